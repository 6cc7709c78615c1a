"""The Kubernetes builder: one repo2docker pod per build (`kube_pod.make_request_pod`).

`KubernetesBuildExecutor` is the thin I/O layer that creates the pod, follows its phase and json
log, and finds its pods again by label after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3 import HTTPResponse

from binder_actors.builders import BuildFailed, Emit
from binder_actors.builders.kube_pod import (
    BUILD_SELECTOR,
    CONTAINER_NAME,
    BuildPodSettings,
    make_request_pod,
    pod_failure_message,
    recorded_request,
)
from binder_actors.builders.repo2docker import repo2docker_line
from binder_actors.builders.steps import LOG_TAIL_LINES, within_build_timeout
from binder_actors.config import BinderConfig
from binder_actors.events import progress
from binder_actors.models import BuildRequest

log = logging.getLogger(__name__)

# A watch the API server ends after this long is simply reopened; short enough to notice a dead connection.
WATCH_SECONDS = 60
# After the pod ends, its log stream should end too; do not wait forever for one that does not.
LOG_DRAIN_SECONDS = 30.0


def _pod_age(pod: dict[str, Any], now: datetime) -> float:
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return 0.0
    return (now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()


def _phase(pod: dict[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def _waiting_reason(pod: dict[str, Any]) -> str:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return str(waiting["reason"])
    return ""


_END = object()


async def _stream_lines(open_response: Callable[[], HTTPResponse]) -> AsyncIterator[str]:
    """The lines of a streaming API response (a watch, a followed log), read in a thread.

    Leaving the iteration early shuts the socket down, which unblocks the reading thread at once.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    opening = asyncio.ensure_future(asyncio.to_thread(open_response))
    try:
        response = await asyncio.shield(opening)
    except asyncio.CancelledError:
        # cancelled while the thread was still opening: close the stream it opens, or it stays open
        opening.add_done_callback(lambda done: done.cancelled() or done.exception() or _close(done.result()))
        raise

    def put(item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is reading any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        try:
            for raw in response:
                put(raw)
        except Exception as error:  # handed to the reader, which decides
            put(error)
        finally:
            put(_END)

    reader = threading.Thread(target=pump, name="kube-stream", daemon=True)
    reader.start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            line = item.decode(errors="replace").rstrip("\r\n")  # type: ignore[attr-defined]
            if line:
                yield line
    finally:
        _close(response)


def _close(response: HTTPResponse) -> None:
    """End a stream: the reading thread unblocks and the API server sees the watch or log follower leave.

    `shutdown` only stops our reads (SHUT_RD); closing the connection is what the server notices.
    """
    with contextlib.suppress(Exception):
        response.shutdown()
    with contextlib.suppress(Exception):
        response.close()
    response.release_conn()


class BuildLog:
    """What one build's log said: the tail for a failure report, and repo2docker's own failure message."""

    def __init__(self) -> None:
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.failure = ""


class KubernetesBuildExecutor:
    """Builds in repo2docker pods named after the build; a pod is the build's only state."""

    def __init__(self, config: BinderConfig, api: k8s.CoreV1Api | None = None) -> None:
        self.config = config
        self.settings = BuildPodSettings.from_config(config)
        self.namespace = config.kubernetes.namespace
        self.api = api or k8s.CoreV1Api(load_api_client())

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        pod = make_request_pod(request, self.settings)
        name = request.build_name
        try:
            current = await self._create_or_join(pod, emit)
            remaining = self.config.build_timeout - _pod_age(current, datetime.now(timezone.utc))
            follow = self._follow(name, current, emit)
            await within_build_timeout(follow, self.config.build_timeout, remaining=max(remaining, 0.001))
        finally:
            await self._delete(name)
        log.info("build done image=%s build=%s", request.image, name)

    async def _create_or_join(self, pod: k8s.V1Pod, emit: Emit) -> dict[str, Any]:
        """Create the build pod, or join the one of the same name (the same build) if it is running."""
        name = pod.metadata.name
        for _attempt in range(2):
            try:
                created = await self._call(self.api.create_namespaced_pod, self.namespace, pod)
            except ApiException as error:
                if error.status != 409:
                    raise BuildFailed(f"Kubernetes refused the build pod: {_api_message(error)}") from None
            else:
                log.info("build pod created build=%s namespace=%s", name, self.namespace)
                await emit(progress("waiting", f"Build pod {name} created, waiting for a node"))
                return created
            existing = await self._read(name)
            if existing is None:
                continue  # deleted between our create and read: create again
            stale = _phase(existing) == "Failed" or (existing.get("metadata") or {}).get("deletionTimestamp")
            if not stale:
                log.info("joining running build pod build=%s phase=%s", name, _phase(existing))
                await emit(progress("waiting", "A build of this image is already running: following it"))
                return existing
            # A failed pod left by an earlier run would fail this build too: start afresh.
            await self._delete(name)
            await self._until_gone(name)
        raise BuildFailed(f"The build pod {name} could not be created; please retry.")

    async def _follow(self, name: str, first: dict[str, Any], emit: Emit) -> None:
        """Relay the pod's progress until it ends; BuildFailed if it failed."""
        build_log = BuildLog()
        logs: asyncio.Task[None] | None = None
        told = ""
        pod = first
        try:
            async with contextlib.aclosing(self._updates(name, first)) as updates:
                async for pod in updates:
                    phase = _phase(pod)
                    if phase == "Pending":
                        state = _waiting_reason(pod) or "Pending"
                        if state != told:
                            told = state
                            await emit(progress("waiting", f"Build pod {name}: {state}"))
                    elif logs is None:
                        logs = asyncio.create_task(self._relay_logs(name, emit, build_log))
                    if phase in ("Succeeded", "Failed"):
                        break
            if logs is not None:
                # The log stream ends with the container; the shield keeps a slow one for the finally below.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(logs), LOG_DRAIN_SECONDS)
        finally:
            if logs is not None and not logs.done():
                logs.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await logs
        if _phase(pod) == "Failed":
            message = build_log.failure or pod_failure_message(pod, self.config.build_timeout)
            raise BuildFailed(message, list(build_log.tail))

    async def _updates(self, name: str, first: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The pod now, then each change of it, through a watch reopened where it left off."""
        yield first
        selector = f"{BUILD_SELECTOR},name={name}"
        version = first["metadata"]["resourceVersion"]
        while True:
            too_old = False
            watch = _stream_lines(
                lambda version=version: self.api.list_namespaced_pod(
                    self.namespace,
                    label_selector=selector,
                    watch=True,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    _preload_content=False,
                )
            )
            async with contextlib.aclosing(watch):
                async for line in watch:
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        # 410 Gone: our version is older than the API server keeps; start from the pod as it is.
                        too_old = True
                        break
                    if kind == "DELETED":
                        raise BuildFailed(f"The build pod {name} was deleted before the build ended; please retry.")
                    version = obj["metadata"]["resourceVersion"]
                    yield obj
            if too_old:
                current = await self._read(name)
                if current is None:
                    raise BuildFailed(f"The build pod {name} disappeared before the build ended; please retry.")
                version = current["metadata"]["resourceVersion"]
                yield current

    async def _relay_logs(self, name: str, emit: Emit, build_log: BuildLog) -> None:
        """Each line of repo2docker's json log as a build event, from the start (a joined build gets it all)."""
        previous = ""
        try:
            async for line in _stream_lines(
                lambda: self.api.read_namespaced_pod_log(
                    name, self.namespace, container=CONTAINER_NAME, follow=True, _preload_content=False
                )
            ):
                phase, message, failure = repo2docker_line(line)
                if not message:
                    continue
                build_log.tail.append(message)
                if failure:
                    build_log.failure = message
                if message != previous:  # a push repeats "Pushing image" once per layer update
                    await emit(progress(phase, message))
                previous = message
        except ApiException as error:
            log.warning("build log unavailable build=%s reason=%s", name, _api_message(error))

    async def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return await self._call(self.api.read_namespaced_pod, name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def _delete(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.api.delete_namespaced_pod, name, self.namespace, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                log.warning("could not delete build pod build=%s reason=%s", name, _api_message(error))

    async def _until_gone(self, name: str, deadline: float = 60.0) -> None:
        async def gone() -> None:
            while await self._read(name) is not None:
                await asyncio.sleep(0.5)  # deletion is the API server's; there is nothing to watch for sooner

        try:
            await asyncio.wait_for(gone(), deadline)
        except asyncio.TimeoutError:
            raise BuildFailed(f"The old build pod {name} is still being deleted; please retry.") from None

    async def _call(self, method: Callable[..., HTTPResponse], *args: Any) -> dict[str, Any]:
        """An API call's JSON body as the API sent it (camelCase), which the watch events also use."""
        response = await asyncio.to_thread(method, *args, _preload_content=False)
        return json.loads(response.data)

    def _build_pods(self) -> list[dict[str, Any]]:
        response = self.api.list_namespaced_pod(self.namespace, label_selector=BUILD_SELECTOR, _preload_content=False)
        return json.loads(response.data).get("items", [])

    def running(self) -> dict[str, str]:
        """Build pods that have not ended: build name -> image. A request for the image joins its pod."""
        return {
            pod["metadata"]["name"]: (pod["metadata"].get("annotations") or {}).get("binder-image", "")
            for pod in self._build_pods()
            if _phase(pod) in ("Pending", "Running")
        }

    def recover(self) -> list[BuildRequest]:
        """The requests of the build pods that have not ended, to be followed again after a restart.

        A pod without a recorded request (made by an older version) is left to be joined when its
        image is requested again.
        """
        recovered = []
        for pod in self._build_pods():
            if _phase(pod) not in ("Pending", "Running"):
                continue
            request = recorded_request(pod)
            if request is None:
                log.info("running build pod carries no build request build=%s", pod["metadata"]["name"])
                continue
            recovered.append(request)
        return recovered

    def cleanup_incomplete(self) -> list[str]:
        """Delete ended build pods and those older than BINDER_BUILD_MAX_AGE; running ones are kept to be joined."""
        now = datetime.now(timezone.utc)
        removed = []
        for pod in self._build_pods():
            name = pod["metadata"]["name"]
            ended = _phase(pod) in ("Succeeded", "Failed")
            if ended or _pod_age(pod, now) > self.config.kubernetes.max_age:
                try:
                    self.api.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
                except ApiException as error:
                    if error.status != 404:
                        raise
                removed.append(name)
            else:
                log.info("build pod still running after a restart build=%s phase=%s", name, _phase(pod))
        return removed


def _api_message(error: ApiException) -> str:
    """The Status message of an API error, else its reason."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)


def load_api_client() -> k8s.ApiClient:
    """An API client from the pod's service account, else from the kubeconfig (development)."""
    from kubernetes import config as kube_config

    configuration = k8s.Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=configuration)
    except kube_config.ConfigException:
        kube_config.load_kube_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)
