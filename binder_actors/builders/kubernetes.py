"""The Kubernetes builder: one repo2docker pod per build, shaped as BinderHub's build pods.

`make_build_pod` is pure and table-tested; `KubernetesBuildExecutor` is the thin I/O layer that
creates the pod, follows its phase and json log, and finds its pods again by label after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3 import HTTPResponse

from binder_actors.builders import BuildFailed, Emit
from binder_actors.config import BinderConfig
from binder_actors.events import Phase, progress
from binder_actors.models import BuildRequest

log = logging.getLogger(__name__)

BUILD_COMPONENT = "binderhub-build"
# The build request as JSON, so that a restarted scheduler can follow the pod without being asked.
REQUEST_ANNOTATION = "binder-actors/build-request"
BUILD_SELECTOR = f"component={BUILD_COMPONENT}"
CONTAINER_NAME = "builder"
HOSTNAME_LABEL = "kubernetes.io/hostname"
DOCKER_SOCKET_MOUNT = "/var/run/docker.sock"
# Where each kind of engine puts its socket on the node (BinderHub chart's hostSocketDir conventions).
DOCKER_SOCKET_PATHS = {
    "host": "/var/run/docker.sock",
    "dind": "/var/run/dind/docker.sock",
    "podman": "/var/run/pink/podman.sock",
}
LOG_TAIL_LINES = 40
# A watch the API server ends after this long is simply reopened; short enough to notice a dead connection.
WATCH_SECONDS = 60
# After the pod ends, its log stream should end too; do not wait forever for one that does not.
LOG_DRAIN_SECONDS = 30.0

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_TOLERATION_FIELDS = {
    "key": "key",
    "operator": "operator",
    "value": "value",
    "effect": "effect",
    "tolerationSeconds": "toleration_seconds",
}
# repo2docker's own phases that are also event phases; its others are reported as building.
_R2D_PHASES = frozenset({"fetching", "building", "pushing"})


def parse_quantity(quantity: str) -> Decimal:
    """The bytes a Kubernetes quantity string means ("1Gi", "512M", "1e9", "1.5Gi"); ValueError if malformed."""
    match = _QUANTITY.match(quantity.strip())
    if not match:
        raise ValueError(
            f"{quantity!r} is not a Kubernetes quantity: write a number with an optional suffix "
            "(Ki, Mi, Gi, Ti, k, M, G, T, ...), for example 2Gi or 512M"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as error:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity") from error
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SUFFIXES:
        return number * _BINARY_SUFFIXES[suffix]
    exponent = int(suffix[1:]) if suffix[:1] in ("e", "E") else _DECIMAL_SUFFIXES[suffix]
    return number.scaleb(exponent)


def rendezvous_node(repo_url: str, nodes: Iterable[str]) -> str | None:
    """The node a repository's builds prefer: highest hash of (node, repo) wins.

    Adding or removing a node moves only the repositories that ranked it first, so most builds
    keep landing where their cached layers are.
    """

    def score(node: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{node}\0{repo_url}".encode()).digest()[:8], "big")

    return max(sorted(set(nodes)), key=score, default=None)


@dataclass(frozen=True)
class BuildPodSettings:
    """Everything about a build pod that comes from the deployment rather than from the build."""

    build_image: str = "quay.io/jupyterhub/repo2docker:2024.07.0"
    push: bool = True
    push_secret: str = ""
    registry_credentials: str = ""
    git_credentials: str = ""
    docker_socket: str = "host"
    docker_socket_path: str = ""
    memory_request: str = ""
    memory_limit: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    service_account: str = ""
    appendix: str = ""
    extra_args: list[str] = field(default_factory=list)
    image_pull_secrets: list[str] = field(default_factory=list)
    sticky_nodes: list[str] = field(default_factory=list)
    anti_affinity: bool = True
    timeout: int = 0

    def __post_init__(self) -> None:
        # Fail when the deployment starts, not on the first build of a user.
        if self.docker_socket not in (*DOCKER_SOCKET_PATHS, "none"):
            raise ValueError(f"build_docker_socket must be host, dind, podman or none, not {self.docker_socket!r}")
        limits = {
            name: parse_quantity(value)
            for name, value in (
                ("build_memory_request", self.memory_request),
                ("build_memory_limit", self.memory_limit),
            )
            if value
        }
        if len(limits) == 2 and limits["build_memory_request"] > limits["build_memory_limit"]:
            raise ValueError(
                f"build_memory_request {self.memory_request} is more than build_memory_limit {self.memory_limit}; "
                "Kubernetes refuses such a pod"
            )
        for toleration in self.tolerations:
            unknown = set(toleration) - set(_TOLERATION_FIELDS)
            if unknown:
                raise ValueError(f"unknown toleration fields {sorted(unknown)}; known: {sorted(_TOLERATION_FIELDS)}")

    @classmethod
    def from_config(cls, config: BinderConfig) -> BuildPodSettings:
        return cls(
            build_image=config.build_image,
            push=config.build_push,
            push_secret=config.build_push_secret,
            registry_credentials=config.build_registry_credentials.get_secret_value(),
            git_credentials=config.build_git_credentials.get_secret_value(),
            docker_socket=config.build_docker_socket,
            docker_socket_path=config.build_docker_socket_path,
            memory_request=config.build_memory_request,
            memory_limit=config.build_memory_limit,
            node_selector=dict(config.build_node_selector),
            tolerations=list(config.build_tolerations),
            service_account=config.build_service_account,
            appendix=config.build_appendix,
            extra_args=list(config.build_extra_args),
            image_pull_secrets=list(config.build_image_pull_secrets),
            sticky_nodes=list(config.build_sticky_nodes),
            timeout=config.build_timeout,
        )

    @property
    def socket_path(self) -> str | None:
        if self.docker_socket == "none":
            return None
        return self.docker_socket_path or DOCKER_SOCKET_PATHS[self.docker_socket]


def repo2docker_args(*, image: str, repo_url: str, ref: str, settings: BuildPodSettings) -> list[str]:
    """The build container's command line, the repository last."""
    args = [
        "jupyter-repo2docker",
        "--ref",
        ref,
        "--image",
        image,
        "--no-clean",
        "--no-run",
        "--json-logs",
        "--user-name",
        "jovyan",
        "--user-id",
        "1000",
    ]
    if settings.appendix:
        args += ["--appendix", settings.appendix]
    if settings.push:
        args.append("--push")
    if settings.memory_limit:
        # repo2docker's own byte strings have no binary suffixes: hand it plain bytes.
        args += ["--build-memory-limit", str(int(parse_quantity(settings.memory_limit)))]
    return [*args, *settings.extra_args, repo_url]


def _affinity(repo_url: str, settings: BuildPodSettings) -> k8s.V1Affinity | None:
    sticky = rendezvous_node(repo_url, settings.sticky_nodes)
    if sticky is not None:
        # Sticky builds replace the spreading: a repository's layers are cached on its node.
        term = k8s.V1NodeSelectorTerm(
            match_expressions=[k8s.V1NodeSelectorRequirement(key=HOSTNAME_LABEL, operator="In", values=[sticky])]
        )
        return k8s.V1Affinity(
            node_affinity=k8s.V1NodeAffinity(
                preferred_during_scheduling_ignored_during_execution=[
                    k8s.V1PreferredSchedulingTerm(weight=100, preference=term)
                ]
            )
        )
    if settings.anti_affinity:
        # Builds are CPU and disk heavy: prefer nodes that are not already building.
        term = k8s.V1PodAffinityTerm(
            label_selector=k8s.V1LabelSelector(match_labels={"component": BUILD_COMPONENT}),
            topology_key=HOSTNAME_LABEL,
        )
        return k8s.V1Affinity(
            pod_anti_affinity=k8s.V1PodAntiAffinity(
                preferred_during_scheduling_ignored_during_execution=[
                    k8s.V1WeightedPodAffinityTerm(weight=100, pod_affinity_term=term)
                ]
            )
        )
    return None


def make_build_pod(*, name: str, image: str, repo_url: str, ref: str, settings: BuildPodSettings) -> k8s.V1Pod:
    """The pod that builds `image` from `repo_url` at `ref`; `name` is the build name, so one pod per build."""
    env: list[k8s.V1EnvVar] = []
    volumes: list[k8s.V1Volume] = []
    mounts: list[k8s.V1VolumeMount] = []
    if settings.git_credentials:
        env.append(k8s.V1EnvVar(name="GIT_CREDENTIAL_ENV", value=settings.git_credentials))
    if settings.registry_credentials:
        env.append(k8s.V1EnvVar(name="CONTAINER_ENGINE_REGISTRY_CREDENTIALS", value=settings.registry_credentials))
    if settings.socket_path is not None:
        volumes.append(
            k8s.V1Volume(
                name="docker-socket",
                host_path=k8s.V1HostPathVolumeSource(path=settings.socket_path, type="Socket"),
            )
        )
        mounts.append(k8s.V1VolumeMount(name="docker-socket", mount_path=DOCKER_SOCKET_MOUNT))
    if settings.push_secret:
        volumes.append(
            k8s.V1Volume(name="docker-config", secret=k8s.V1SecretVolumeSource(secret_name=settings.push_secret))
        )
        mounts.append(k8s.V1VolumeMount(name="docker-config", mount_path="/root/.docker", read_only=True))

    memory = {"requests": settings.memory_request, "limits": settings.memory_limit}
    resources = {kind: {"memory": value} for kind, value in memory.items() if value}
    container = k8s.V1Container(
        name=CONTAINER_NAME,
        image=settings.build_image,
        image_pull_policy="IfNotPresent",
        args=repo2docker_args(image=image, repo_url=repo_url, ref=ref, settings=settings),
        env=env or None,
        volume_mounts=mounts or None,
        resources=k8s.V1ResourceRequirements(**resources) if resources else None,
    )
    tolerations = [
        k8s.V1Toleration(**{_TOLERATION_FIELDS[key]: value for key, value in toleration.items()})
        for toleration in settings.tolerations
    ]
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(
            name=name,
            labels={"component": BUILD_COMPONENT, "name": name},
            annotations={"binder-repo": repo_url, "binder-image": image},
        ),
        spec=k8s.V1PodSpec(
            containers=[container],
            volumes=volumes or None,
            restart_policy="Never",
            node_selector=settings.node_selector or None,
            tolerations=tolerations or None,
            affinity=_affinity(repo_url, settings),
            service_account_name=settings.service_account or None,
            # repo2docker needs no API access, and the repository's code runs next to it.
            automount_service_account_token=False,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=s) for s in settings.image_pull_secrets] or None,
            # Kubernetes ends a build even when no executor is left to time it out.
            active_deadline_seconds=settings.timeout or None,
        ),
    )


def make_request_pod(request: BuildRequest, settings: BuildPodSettings) -> k8s.V1Pod:
    """The build pod of `request`, carrying the request itself for a scheduler that restarts."""
    pod = make_build_pod(
        name=request.build_name,
        image=request.image,
        repo_url=request.resolved.repo_url,
        ref=request.resolved.resolved_ref,
        settings=settings,
    )
    pod.metadata.annotations[REQUEST_ANNOTATION] = request.model_dump_json()
    return pod


def recorded_request(pod: dict[str, Any]) -> BuildRequest | None:
    """The build request a pod was made for, if it carries one that names this pod."""
    meta = pod.get("metadata") or {}
    recorded = (meta.get("annotations") or {}).get(REQUEST_ANNOTATION)
    if not recorded:
        return None
    try:
        request = BuildRequest.model_validate_json(recorded)
    except ValueError:
        return None
    return request if request.build_name == meta.get("name") else None


def log_line_event(line: str) -> tuple[Phase, str, bool]:
    """(event phase, message, whether repo2docker reported a failure) of one line of `--json-logs` output."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return "building", line, False
    message = str(record.get("message", "")).rstrip("\n")
    r2d_phase = str(record.get("phase", ""))
    if r2d_phase in ("failed", "failure"):
        return "building", message, True
    return (r2d_phase if r2d_phase in _R2D_PHASES else "building"), message, False  # type: ignore[return-value]


def pod_failure_message(pod: dict[str, Any], timeout: int) -> str:
    """Why a Failed build pod failed, in words a user can act on."""
    status = pod.get("status") or {}
    if status.get("reason") == "DeadlineExceeded":
        return f"The build took longer than BINDER_BUILD_TIMEOUT={timeout}s and was stopped."
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            return "The build ran out of memory (BINDER_BUILD_MEMORY_LIMIT); ask the operator for a higher limit."
        if terminated:
            detail = terminated.get("message") or terminated.get("reason") or ""
            return f"The build failed (exit code {terminated.get('exitCode')}){': ' + detail if detail else ''}."
    return f"The build pod failed{': ' + status['message'] if status.get('message') else ''}."


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
        self.namespace = config.kube_namespace
        self.api = api or k8s.CoreV1Api(load_api_client())

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        pod = make_request_pod(request, self.settings)
        name = request.build_name
        try:
            current = await self._create_or_join(pod, emit)
            remaining = self.config.build_timeout - _pod_age(current, datetime.now(timezone.utc))
            await asyncio.wait_for(self._follow(name, current, emit), max(remaining, 0.001))
        except asyncio.TimeoutError:
            raise BuildFailed(
                f"The build took longer than BINDER_BUILD_TIMEOUT={self.config.build_timeout}s and was stopped."
            ) from None
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
                phase, message, failure = log_line_event(line)
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
            if ended or _pod_age(pod, now) > self.config.build_max_age:
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
