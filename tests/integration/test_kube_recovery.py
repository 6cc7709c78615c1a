"""A restarted BuildScheduler finds the Kubernetes build pods its predecessor left running, follows them and
records their images: real Ray, the real registry, the API emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from binder_actors.actors.build_scheduler import BuildScheduler
from binder_actors.actors.image_cache import ImageCache
from binder_actors.builders.kube_pod import BuildPodSettings, make_request_pod
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest, BuildSchedulerStats
from tests.helpers import wait_for
from tests.kube_builds import DEADLINE, NS, posts, r2d, request_for, run
from tests.kube_emulator import KubeEmulator
from tests.registry import RunningRegistry, push_image, start_registry

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
