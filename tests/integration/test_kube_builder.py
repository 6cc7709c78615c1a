"""The Kubernetes build executor's whole lifecycle, with the real `kubernetes` client against the API emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import ray
from kubernetes.client import CoreV1Api

import binder_actors.builders.kubernetes as kube
from binder_actors.actors.build_scheduler import BuildScheduler
from binder_actors.actors.image_cache import ImageCache
from binder_actors.builders import BuildFailed
from binder_actors.builders.kube_pod import BuildPodSettings, make_build_pod, make_request_pod
from binder_actors.builders.kubernetes import KubernetesBuildExecutor
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest, BuildSchedulerStats
from binder_actors.providers.base import ResolvedRef
from tests.helpers import wait_for
from tests.kube_emulator import KubeEmulator
from tests.registry import RunningRegistry, push_image, start_registry

T = TypeVar("T")
NS = "default"
DEADLINE = 10.0


def r2d(message: str, phase: str = "building") -> str:
    """One line of `repo2docker --json-logs`."""
    return json.dumps({"message": message + "\n", "phase": phase})


def request_for(
    repo: str = "binder-examples/requirements",
    sha: str = "0123456789abcdef",
    image_prefix: str = "registry.example.org/binder/",
) -> BuildRequest:
    resolved = ResolvedRef(
        provider="gh",
        spec=f"{repo}/HEAD",
        repo_url=f"https://github.com/{repo}",
        unresolved_ref="HEAD",
        resolved_ref=sha,
        build_slug=repo,
        ref_url=f"https://github.com/{repo}/tree/{sha}",
        persistent_spec=f"{repo}/{sha}",
    )
    return BuildRequest.for_ref(resolved, image_prefix=image_prefix)


class Events:
    """What a build emitted, with a way to wait until something arrives."""

    def __init__(self) -> None:
        self.events: list[BinderEvent] = []
        self._changed = asyncio.Condition()

    async def emit(self, event: BinderEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def until(self, message: str) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: any(message in e.message for e in self.events)), DEADLINE
            )

    @property
    def messages(self) -> list[str]:
        return [event.message.rstrip("\n") for event in self.events]


@pytest.fixture
def emulator() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emulator:
        yield emulator


def executor_for(emulator: KubeEmulator, **settings: Any) -> KubernetesBuildExecutor:
    config = BinderConfig(builder="kubernetes", kube_namespace=NS, build_push_secret="", **settings)
    return KubernetesBuildExecutor(config, CoreV1Api(emulator.api_client()))


async def kubelet(emulator: KubeEmulator, condition: Callable[[], bool]) -> None:
    """Wait, without blocking the event loop, until the emulator's state satisfies `condition`."""
    await asyncio.to_thread(emulator.wait_for, condition, DEADLINE)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 3 * DEADLINE))


def posts(emulator: KubeEmulator) -> int:
    return sum(1 for method, _ in emulator.requests if method == "POST")


def test_build_relays_phases_and_json_logs_then_deletes_its_pod(emulator: KubeEmulator) -> None:
    request = request_for()
    executor = executor_for(emulator)
    events = Events()

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, events.emit))
        await kubelet(emulator, lambda: emulator.pod(request.build_name) is not None)
        pod = emulator.pod(request.build_name)
        assert pod is not None
        assert pod["metadata"]["labels"] == {"component": "binderhub-build", "name": request.build_name}
        assert pod["spec"]["containers"][0]["args"][-1] == "https://github.com/binder-examples/requirements"
        emulator.set_phase(request.build_name, "Pending", reason="ContainerCreating")
        await events.until("ContainerCreating")
        emulator.set_phase(request.build_name, "Running")
        emulator.log(request.build_name, r2d("Picked Git content provider.", "fetching"), r2d("Step 1/3 : FROM x"))
        await events.until("Step 1/3")  # live, while the pod still runs
        assert not build.done()
        emulator.log(request.build_name, r2d("Pushing image", "pushing"), r2d("Pushing image", "pushing"))
        emulator.set_phase(request.build_name, "Succeeded")
        await build

    run(scenario)
    assert [(e.phase, m) for e, m in zip(events.events, events.messages, strict=True)] == [
        ("waiting", f"Build pod {request.build_name} created, waiting for a node"),
        ("waiting", f"Build pod {request.build_name}: Pending"),
        ("waiting", f"Build pod {request.build_name}: ContainerCreating"),
        ("fetching", "Picked Git content provider."),
        ("building", "Step 1/3 : FROM x"),
        ("pushing", "Pushing image"),
    ]
    assert emulator.pod(request.build_name) is None
    emulator.wait_for(lambda: emulator.streams(request.build_name) == 0)


def test_failed_build_reports_repo2docker_message_and_log_tail(emulator: KubeEmulator) -> None:
    request = request_for()
    executor = executor_for(emulator)
    events = Events()

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, events.emit))
        await kubelet(emulator, lambda: emulator.pod(request.build_name) is not None)
        emulator.set_phase(request.build_name, "Running")
        emulator.log(request.build_name, r2d("Step 4/9 : RUN pip install"), r2d("Error: no such package", "failed"))
        emulator.set_phase(request.build_name, "Failed")
        with pytest.raises(BuildFailed) as failure:
            await build
        assert str(failure.value) == "Error: no such package"
        assert failure.value.log_tail == ["Step 4/9 : RUN pip install", "Error: no such package"]

    run(scenario)
    assert emulator.pod(request.build_name) is None


@pytest.mark.parametrize(
    ("reason", "exit_code", "message"),
    [
        ("OOMKilled", 137, "ran out of memory"),
        ("Error", 2, "The build failed (exit code 2): Error."),
        ("DeadlineExceeded", None, "BINDER_BUILD_TIMEOUT=1800s"),
    ],
)
def test_failed_pod_without_a_log_message_says_why(
    emulator: KubeEmulator, reason: str, exit_code: int | None, message: str
) -> None:
    request = request_for()
    executor = executor_for(emulator)

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, Events().emit))
        await kubelet(emulator, lambda: emulator.pod(request.build_name) is not None)
        emulator.set_phase(request.build_name, "Failed", reason=reason, exit_code=exit_code)
        with pytest.raises(BuildFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
            await build

    run(scenario)


def test_restarted_executor_keeps_the_running_build_and_joins_it_on_409(emulator: KubeEmulator) -> None:
    request = request_for()
    # The pod a scheduler that has since died started, half-way through its build.
    settings = BuildPodSettings()
    pod = make_build_pod(name=request.build_name, image=request.image, repo_url="u", ref="r", settings=settings)
    emulator.add_pod(emulator.api_client().sanitize_for_serialization(pod), NS)
    emulator.set_phase(request.build_name, "Running")
    emulator.log(request.build_name, r2d("Step 1/3 : FROM x"), r2d("Step 2/3 : COPY"))

    executor = executor_for(emulator)
    assert executor.cleanup_incomplete() == []
    assert executor.running() == {request.build_name: request.image}
    events = Events()

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, events.emit))
        await events.until("Step 2/3")  # the backlog
        emulator.log(request.build_name, r2d("Step 3/3 : RUN"))
        await events.until("Step 3/3")  # then live
        emulator.set_phase(request.build_name, "Succeeded")
        await build

    run(scenario)
    assert events.messages == [
        "A build of this image is already running: following it",
        "Step 1/3 : FROM x",
        "Step 2/3 : COPY",
        "Step 3/3 : RUN",
    ]
    assert posts(emulator) == 1  # the refused create; the pod is the first one
    assert emulator.pod(request.build_name) is None


def test_failed_pod_left_by_an_earlier_run_is_replaced(emulator: KubeEmulator) -> None:
    request = request_for()
    emulator.add_pod({"metadata": {"name": request.build_name, "labels": {"component": "binderhub-build"}}}, NS)
    emulator.set_phase(request.build_name, "Failed")
    old_uid = emulator.pod(request.build_name)["metadata"]["uid"]  # type: ignore[index]
    executor = executor_for(emulator)

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, Events().emit))
        await kubelet(
            emulator,
            lambda: (emulator.pod(request.build_name) or {"metadata": {"uid": old_uid}})["metadata"]["uid"] != old_uid,
        )
        emulator.set_phase(request.build_name, "Succeeded")
        await build

    run(scenario)
    assert posts(emulator) == 2


def test_build_over_its_timeout_is_stopped_and_its_pod_deleted(emulator: KubeEmulator) -> None:
    request = request_for()
    executor = executor_for(emulator, build_timeout=1)

    async def scenario() -> None:
        with pytest.raises(BuildFailed, match="BINDER_BUILD_TIMEOUT=1s"):
            await executor.build(request, Events().emit)  # the pod never leaves Pending

    run(scenario)
    assert posts(emulator) == 1
    assert emulator.pod(request.build_name) is None
    emulator.wait_for(lambda: emulator.streams(request.build_name) == 0)


def test_joined_build_gets_only_what_is_left_of_its_timeout(emulator: KubeEmulator) -> None:
    request = request_for()
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    emulator.add_pod(
        {"metadata": {"name": request.build_name, "labels": {"name": request.build_name}}}, NS, two_hours_ago
    )
    emulator.set_phase(request.build_name, "Running")
    executor = executor_for(emulator, build_timeout=3600)

    async def scenario() -> None:
        with pytest.raises(BuildFailed, match="BINDER_BUILD_TIMEOUT=3600s"):
            await executor.build(request, Events().emit)

    run(scenario)
    assert emulator.pod(request.build_name) is None


def test_pod_deleted_under_a_build_fails_it(emulator: KubeEmulator) -> None:
    request = request_for()
    executor = executor_for(emulator)

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, Events().emit))
        await kubelet(emulator, lambda: emulator.streams(request.build_name) > 0)
        await asyncio.to_thread(CoreV1Api(emulator.api_client()).delete_namespaced_pod, request.build_name, NS)
        with pytest.raises(BuildFailed, match="was deleted before the build ended"):
            await build

    run(scenario)


def test_watch_that_is_too_old_starts_again_from_the_pod(
    emulator: KubeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube, "WATCH_SECONDS", 1)  # the API server ends each watch after a second
    request = request_for()
    executor = executor_for(emulator)
    read_path = f"/api/v1/namespaces/{NS}/pods/{request.build_name}"

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, Events().emit))
        await kubelet(emulator, lambda: emulator.streams(request.build_name) > 0)
        emulator.compact()
        emulator.set_phase(request.build_name, "Running")  # seen live by the open watch
        emulator.compact()  # the next watch, from that version, is too old: 410 Gone
        await kubelet(emulator, lambda: ("GET", read_path) in emulator.requests)
        emulator.set_phase(request.build_name, "Succeeded")
        await build

    run(scenario)
    assert emulator.pod(request.build_name) is None


def test_cancelled_build_closes_its_streams_and_deletes_its_pod(emulator: KubeEmulator) -> None:
    request = request_for()
    executor = executor_for(emulator)

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, Events().emit))
        await kubelet(emulator, lambda: emulator.pod(request.build_name) is not None)
        emulator.set_phase(request.build_name, "Running")
        await kubelet(emulator, lambda: emulator.streams(request.build_name) == 2)  # the watch and the log
        build.cancel()
        with pytest.raises(asyncio.CancelledError):
            await build

    run(scenario)
    emulator.wait_for(lambda: emulator.streams(request.build_name) == 0)
    assert emulator.pod(request.build_name) is None


def test_cleanup_deletes_ended_and_over_age_build_pods_only(emulator: KubeEmulator) -> None:
    now = datetime.now(timezone.utc)
    pods = {
        "build-succeeded": ("Succeeded", now),
        "build-failed": ("Failed", now),
        "build-running": ("Running", now - timedelta(hours=1)),
        "build-pending": ("Pending", now),
        "build-stuck": ("Running", now - timedelta(hours=5)),
    }
    for name, (phase, created) in pods.items():
        labels = {"component": "binderhub-build", "name": name}
        emulator.add_pod(
            {"metadata": {"name": name, "labels": labels, "annotations": {"binder-image": name}}}, NS, created
        )
        emulator.set_phase(name, phase)
    emulator.add_pod({"metadata": {"name": "jupyter-someone", "labels": {"component": "singleuser-server"}}}, NS)
    emulator.set_phase("jupyter-someone", "Succeeded")

    executor = executor_for(emulator, build_max_age=4 * 3600)
    assert sorted(executor.cleanup_incomplete()) == ["build-failed", "build-stuck", "build-succeeded"]
    left = {name for (_, name) in emulator.pods}
    assert left == {"build-running", "build-pending", "jupyter-someone"}
    assert executor.running() == {"build-pending": "build-pending", "build-running": "build-running"}
    assert executor.cleanup_incomplete() == []


def test_recover_returns_the_requests_of_build_pods_still_running(emulator: KubeEmulator) -> None:
    running, pending, ended = (request_for(sha=sha) for sha in ("1" * 40, "2" * 40, "3" * 40))
    api = emulator.api_client()
    for request, phase in ((running, "Running"), (pending, "Pending"), (ended, "Succeeded")):
        emulator.add_pod(api.sanitize_for_serialization(make_request_pod(request, BuildPodSettings())), NS)
        emulator.set_phase(request.build_name, phase)
    # A build pod without a recorded request (an older version's) is left to be joined on request.
    older = request_for(sha="4" * 40)
    pod = make_build_pod(name=older.build_name, image=older.image, repo_url="u", ref="r", settings=BuildPodSettings())
    emulator.add_pod(api.sanitize_for_serialization(pod), NS)
    emulator.set_phase(older.build_name, "Running")

    recovered = executor_for(emulator).recover()
    assert sorted(recovered, key=lambda r: r.build_name) == sorted([running, pending], key=lambda r: r.build_name)


# A restarted BuildScheduler, as a Ray actor, with ImageCache beside it and a real registry.

SCHEDULER_NAMESPACE = "binder-kube-recovery"
ACTOR_START = 60.0  # a scheduler with a runtime_env of its own starts in a fresh worker process


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """The Ray the other integration tests started, else a small one for this module."""
    if ray.is_initialized():
        yield
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace=SCHEDULER_NAMESPACE)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    running = start_registry(tmp_path_factory.mktemp("kube-registry"))
    yield running
    running.stop()


class Cluster:
    """The actors a restart leaves: schedulers that come and go, one ImageCache, all on the emulator."""

    def __init__(self, emulator: KubeEmulator, registry: RunningRegistry, root: Path) -> None:
        self.emulator = emulator
        self.registry = registry
        self.config = BinderConfig(
            data_dir=root,
            namespace=SCHEDULER_NAMESPACE,
            builder="kubernetes",
            kube_namespace=NS,
            build_push_secret="",
            registry="oci",
            registry_url=registry.url,
            image_prefix=f"{registry.host}/binder/",
            image_cache_miss_ttl=3600,  # a miss stays cached: only a told ImageCache finds the image
        )
        self.kubeconfig = emulator.write_kubeconfig(root / "kubeconfig", NS)
        self.actors: list[Any] = []
        self.image_cache = self._keep(
            ray.remote(ImageCache)
            .options(name="ImageCache", namespace=SCHEDULER_NAMESPACE, num_cpus=0)
            .remote(self.config)
        )

    def _keep(self, handle: Any) -> Any:
        self.actors.append(handle)
        return handle

    def start_scheduler(self) -> Any:
        """A BuildScheduler that reaches the emulator through its kubeconfig, as in a pod it reaches the API."""
        runtime_env = {"env_vars": {"KUBECONFIG": str(self.kubeconfig)}}
        return self._keep(ray.remote(BuildScheduler).options(num_cpus=0, runtime_env=runtime_env).remote(self.config))

    def request(self, sha: str) -> BuildRequest:
        """A build of its own: the registry outlives each test."""
        return request_for(sha=sha, image_prefix=self.config.registry.image_prefix)

    def push(self, image: str) -> None:
        """What repo2docker's --push does at the end of a build."""
        repository, tag = image.removeprefix(f"{self.registry.host}/").rsplit(":", 1)
        push_image(self.registry.url, repository, tag)

    def stop(self) -> None:
        for handle in self.actors:
            ray.kill(handle, no_restart=True)


@pytest.fixture
def cluster(emulator: KubeEmulator, registry: RunningRegistry, tmp_path: Path, ray_session: None) -> Iterator[Cluster]:
    running = Cluster(emulator, registry, tmp_path)
    yield running
    running.stop()


def test_restarted_scheduler_follows_the_build_pod_left_running_and_records_its_image(
    cluster: Cluster, emulator: KubeEmulator
) -> None:
    request = cluster.request("a" * 40)
    assert ray.get(cluster.image_cache.exists.remote(request.image)) is False  # a miss, now cached

    first = cluster.start_scheduler()
    started = first.build.remote(request)  # the request that started the build; its caller goes too
    emulator.wait_for(lambda: emulator.pod(request.build_name) is not None, ACTOR_START)
    emulator.set_phase(request.build_name, "Running")
    emulator.log(request.build_name, r2d("Step 1/2 : FROM x"))
    ray.kill(first, no_restart=True)  # no cleanup runs: the pod builds on
    del started

    second = cluster.start_scheduler()
    assert ray.get(second.running.remote(), timeout=ACTOR_START) == [request.image]  # found by label, not asked
    # It follows the pod: its create was refused (409) and it watches the pod.
    wait_for(lambda: posts(emulator) == 2, DEADLINE, "the second scheduler to join the pod")
    emulator.wait_for(lambda: emulator.streams(request.build_name) > 0)
    cluster.push(request.image)
    emulator.log(request.build_name, r2d("Pushing image", "pushing"))
    emulator.set_phase(request.build_name, "Succeeded")

    emulator.wait_for(lambda: emulator.pod(request.build_name) is None)  # the finished pod is deleted
    wait_for(
        lambda: ray.get(cluster.image_cache.exists.remote(request.image)), DEADLINE, "ImageCache to know the image"
    )
    assert ray.get(second.running.remote()) == []
    assert ray.get(second.stats.remote()) == BuildSchedulerStats(builds_started=0, building=0, queued=0)
    assert posts(emulator) == 2  # one pod: the first scheduler's


def test_request_during_recovery_joins_the_followed_build(cluster: Cluster, emulator: KubeEmulator) -> None:
    request = cluster.request("b" * 40)
    # The pod a scheduler that has since died started.
    pod = make_request_pod(request, BuildPodSettings.from_config(cluster.config))
    emulator.add_pod(emulator.api_client().sanitize_for_serialization(pod), NS)
    emulator.set_phase(request.build_name, "Running")
    emulator.log(request.build_name, r2d("Step 1/2 : FROM x"))

    scheduler = cluster.start_scheduler()
    assert ray.get(scheduler.running.remote(), timeout=ACTOR_START) == [request.image]
    wait_for(lambda: posts(emulator) == 1, DEADLINE, "the restarted scheduler to join the pod")

    async def launch_meanwhile() -> list[BinderEvent]:
        events = []
        async for ref in scheduler.build.remote(request):
            event = await ref
            events.append(event)
            if "Step 1/2" in event.message:  # the backlog arrived: let the build end
                emulator.log(request.build_name, r2d("Step 2/2 : RUN"))
                await asyncio.to_thread(cluster.push, request.image)
                emulator.set_phase(request.build_name, "Succeeded")
        return events

    events = run(launch_meanwhile)
    assert [event.message.rstrip("\n") for event in events] == [
        "A build of this image is already running: following it",
        "Step 1/2 : FROM x",
        "Step 2/2 : RUN",
        "Built image, launching...",
    ]
    assert events[-1].phase == "built"
    assert posts(emulator) == 1  # the recovered build's refused create; the request started nothing
    assert ray.get(scheduler.stats.remote()).builds_started == 0
    emulator.wait_for(lambda: emulator.pod(request.build_name) is None)
