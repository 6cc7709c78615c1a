"""The Kubernetes build executor's whole lifecycle, with the real `kubernetes` client against the API emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes.client import CoreV1Api

import binder_actors.builders.kubernetes as kube
from binder_actors.builders import BuildFailed
from binder_actors.builders.kube_pod import BuildPodSettings, make_build_pod, make_request_pod
from binder_actors.builders.kubernetes import KubernetesBuildExecutor
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from tests.kube_builds import DEADLINE, NS, posts, r2d, request_for, run
from tests.kube_emulator import KubeEmulator


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


def executor_for(emulator: KubeEmulator, **settings: Any) -> KubernetesBuildExecutor:
    config = BinderConfig(builder="kubernetes", kube_namespace=NS, build_push_secret="", **settings)
    return KubernetesBuildExecutor(config, CoreV1Api(emulator.api_client()))


async def kubelet(emulator: KubeEmulator, condition: Callable[[], bool]) -> None:
    """Wait, without blocking the event loop, until the emulator's state satisfies `condition`."""
    await asyncio.to_thread(emulator.wait_for, condition, DEADLINE)


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
