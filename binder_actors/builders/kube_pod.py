"""The build pod of a build request, shaped as BinderHub's build pods: pure, so every case is table-tested.

`kubernetes.KubernetesBuildExecutor` creates and follows these pods; nothing here talks to a cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from binder_actors.builders import timeout_message
from binder_actors.config import BinderConfig
from binder_actors.models import BuildRequest

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

_TOLERATION_FIELDS = {
    "key": "key",
    "operator": "operator",
    "value": "value",
    "effect": "effect",
    "tolerationSeconds": "toleration_seconds",
}


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

    @classmethod
    def from_config(cls, config: BinderConfig) -> BuildPodSettings:
        return cls(
            build_image=config.kubernetes.image,
            push=config.kubernetes.push,
            push_secret=config.kubernetes.push_secret,
            registry_credentials=config.kubernetes.registry_credentials.get_secret_value(),
            git_credentials=config.kubernetes.git_credentials.get_secret_value(),
            docker_socket=config.kubernetes.docker_socket,
            docker_socket_path=config.kubernetes.docker_socket_path,
            memory_request=config.kubernetes.memory_request,
            memory_limit=config.kubernetes.memory_limit,
            node_selector=dict(config.kubernetes.node_selector),
            tolerations=list(config.kubernetes.tolerations),
            service_account=config.kubernetes.service_account,
            appendix=config.kubernetes.appendix,
            extra_args=list(config.kubernetes.extra_args),
            image_pull_secrets=list(config.kubernetes.image_pull_secrets),
            sticky_nodes=list(config.kubernetes.sticky_nodes),
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
    # No --build-memory-limit: repo2docker 2025.08 and later exit on it, and the pod's memory limit
    # (BINDER_BUILD_MEMORY_LIMIT) bounds the build whatever repo2docker's version.
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


def pod_failure_message(pod: dict[str, Any], timeout: int) -> str:
    """Why a Failed build pod failed, in words a user can act on."""
    status = pod.get("status") or {}
    if status.get("reason") == "DeadlineExceeded":
        return timeout_message(timeout)
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            return "The build ran out of memory (BINDER_BUILD_MEMORY_LIMIT); ask the operator for a higher limit."
        if terminated:
            detail = terminated.get("message") or terminated.get("reason") or ""
            return f"The build failed (exit code {terminated.get('exitCode')}){': ' + detail if detail else ''}."
    return f"The build pod failed{': ' + status['message'] if status.get('message') else ''}."
