"""The build pod as the Kubernetes API receives it (camelCase JSON), for BinderHub's build-pod cases."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient

from binder_actors.builders import make_executor
from binder_actors.builders.kube_pod import (
    BuildPodSettings,
    make_build_pod,
    pod_failure_message,
    rendezvous_node,
)
from binder_actors.builders.kubernetes import KubernetesBuildExecutor
from binder_actors.config import BinderConfig
from binder_actors.names import build_name

REPO = "https://github.com/binder-examples/requirements"
REF = "a1b2c3d4e5f6"
IMAGE = "registry.example.org/binder/binder-2dexamples-2drequirements-55ab5c:a1b2c3d4e5f6"
NAME = build_name("binder-examples-requirements", REF)
BASE_ARGS = [
    "jupyter-repo2docker",
    "--ref",
    REF,
    "--image",
    IMAGE,
    "--no-clean",
    "--no-run",
    "--json-logs",
    "--user-name",
    "jovyan",
    "--user-id",
    "1000",
]


def pod_json(**settings: Any) -> dict[str, Any]:
    pod = make_build_pod(name=NAME, image=IMAGE, repo_url=REPO, ref=REF, settings=BuildPodSettings(**settings))
    return ApiClient().sanitize_for_serialization(pod)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["spec"]["containers"]
    return only


@pytest.mark.parametrize(
    ("settings", "expected_args"),
    [
        ({"push": False}, [*BASE_ARGS, REPO]),
        ({"push": True}, [*BASE_ARGS, "--push", REPO]),
        ({"push": False, "appendix": "RUN echo hi"}, [*BASE_ARGS, "--appendix", "RUN echo hi", REPO]),
        (
            {"push": True, "appendix": "USER root", "extra_args": ["--debug", "--cache-from", "x"]},
            [*BASE_ARGS, "--appendix", "USER root", "--push", "--debug", "--cache-from", "x", REPO],
        ),
        # The pod's limit bounds the build: repo2docker 2025.08+ exits on --build-memory-limit.
        ({"push": False, "memory_limit": "2Gi"}, [*BASE_ARGS, REPO]),
    ],
)
def test_repo2docker_args_end_with_the_repository(settings: dict[str, Any], expected_args: list[str]) -> None:
    assert container(pod_json(**settings))["args"] == expected_args


def test_pod_is_named_labelled_and_annotated_for_its_build() -> None:
    pod = pod_json()
    # BinderHub's name of this build (its rule, see tests/unit/test_names.py), so both name one build's pod alike.
    assert pod["metadata"]["name"] == NAME == "build-binder-2dexamples-2drequirements-55ab5c-a1b-bd"
    assert pod["metadata"]["labels"] == {"component": "binderhub-build", "name": NAME}
    assert pod["metadata"]["annotations"] == {"binder-repo": REPO, "binder-image": IMAGE}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert container(pod)["image"] == "quay.io/jupyterhub/repo2docker:2024.07.0"


def test_same_build_gives_the_same_pod() -> None:
    assert pod_json(sticky_nodes=["n1", "n2"]) == pod_json(sticky_nodes=["n2", "n1"])


@pytest.mark.parametrize(
    ("settings", "volumes", "mounts"),
    [
        (
            {"docker_socket": "host"},
            [{"name": "docker-socket", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}}],
            [{"name": "docker-socket", "mountPath": "/var/run/docker.sock"}],
        ),
        (
            {"docker_socket": "dind"},
            [{"name": "docker-socket", "hostPath": {"path": "/var/run/dind/docker.sock", "type": "Socket"}}],
            [{"name": "docker-socket", "mountPath": "/var/run/docker.sock"}],
        ),
        (
            {"docker_socket": "podman"},
            [{"name": "docker-socket", "hostPath": {"path": "/var/run/pink/podman.sock", "type": "Socket"}}],
            [{"name": "docker-socket", "mountPath": "/var/run/docker.sock"}],
        ),
        (
            {"docker_socket": "dind", "docker_socket_path": "/run/custom/docker.sock"},
            [{"name": "docker-socket", "hostPath": {"path": "/run/custom/docker.sock", "type": "Socket"}}],
            [{"name": "docker-socket", "mountPath": "/var/run/docker.sock"}],
        ),
        ({"docker_socket": "none"}, None, None),
        (
            {"docker_socket": "none", "push_secret": "binder-build-docker-config"},
            [{"name": "docker-config", "secret": {"secretName": "binder-build-docker-config"}}],
            [{"name": "docker-config", "mountPath": "/root/.docker", "readOnly": True}],
        ),
    ],
)
def test_socket_and_push_secret_volumes(
    settings: dict[str, Any], volumes: list[dict[str, Any]] | None, mounts: list[dict[str, Any]] | None
) -> None:
    pod = pod_json(**settings)
    assert pod["spec"].get("volumes") == volumes
    assert container(pod).get("volumeMounts") == mounts


@pytest.mark.parametrize(
    ("settings", "env"),
    [
        ({}, None),
        (
            {"git_credentials": "username=u\npassword=p"},
            [{"name": "GIT_CREDENTIAL_ENV", "value": "username=u\npassword=p"}],
        ),
        (
            {"registry_credentials": '{"registry": "r", "username": "u", "password": "p"}'},
            [
                {
                    "name": "CONTAINER_ENGINE_REGISTRY_CREDENTIALS",
                    "value": '{"registry": "r", "username": "u", "password": "p"}',
                }
            ],
        ),
    ],
)
def test_credentials_reach_the_build_container(settings: dict[str, Any], env: list[dict[str, str]] | None) -> None:
    assert container(pod_json(**settings)).get("env") == env


@pytest.mark.parametrize(
    ("request_", "limit", "resources"),
    [
        ("", "", None),
        ("1Gi", "", {"requests": {"memory": "1Gi"}}),
        ("", "2G", {"limits": {"memory": "2G"}}),
        ("512Mi", "1.5Gi", {"requests": {"memory": "512Mi"}, "limits": {"memory": "1.5Gi"}}),
        ("1Gi", "1Gi", {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}),
    ],
)
def test_memory_request_and_limit(request_: str, limit: str, resources: dict[str, Any] | None) -> None:
    assert container(pod_json(memory_request=request_, memory_limit=limit)).get("resources") == resources


def test_node_selector_tolerations_service_account_and_pull_secrets() -> None:
    pod = pod_json(
        node_selector={"hub.jupyter.org/node-purpose": "user"},
        tolerations=[
            {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
            {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
        ],
        service_account="binder-build",
        image_pull_secrets=["quay-mirror"],
    )
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}
    assert spec["tolerations"] == [
        {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
    ]
    assert spec["serviceAccountName"] == "binder-build"
    assert spec["imagePullSecrets"] == [{"name": "quay-mirror"}]


def test_defaults_leave_optional_fields_out() -> None:
    spec = pod_json()["spec"]
    for absent in ("nodeSelector", "tolerations", "serviceAccountName", "imagePullSecrets", "activeDeadlineSeconds"):
        assert absent not in spec


def test_timeout_becomes_the_pods_active_deadline() -> None:
    assert pod_json(timeout=1800)["spec"]["activeDeadlineSeconds"] == 1800


ANTI_AFFINITY = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"component": "binderhub-build"}},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    }
}


def sticky_to(node: str) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]
                    },
                }
            ]
        }
    }


@pytest.mark.parametrize(
    ("settings", "affinity"),
    [
        ({}, ANTI_AFFINITY),
        ({"anti_affinity": False}, None),
        ({"sticky_nodes": ["only-node"]}, sticky_to("only-node")),
        ({"sticky_nodes": ["n1", "n2", "n3"]}, sticky_to(rendezvous_node(REPO, ["n1", "n2", "n3"]) or "")),
    ],
)
def test_affinity_spreads_builds_or_keeps_a_repository_on_its_node(
    settings: dict[str, Any], affinity: dict[str, Any] | None
) -> None:
    assert pod_json(**settings)["spec"].get("affinity") == affinity


def test_rendezvous_spreads_repositories_and_moves_few_when_a_node_goes() -> None:
    nodes = [f"node-{i}" for i in range(5)]
    repos = [f"https://github.com/org/repo-{i}" for i in range(500)]
    before = {repo: rendezvous_node(repo, nodes) for repo in repos}
    assert {repo: rendezvous_node(repo, list(reversed(nodes))) for repo in repos} == before
    counts = {node: list(before.values()).count(node) for node in nodes}
    assert min(counts.values()) > 500 / 5 / 2, counts  # no node is starved
    after = {repo: rendezvous_node(repo, nodes[:-1]) for repo in repos}
    moved = [repo for repo in repos if before[repo] != after[repo]]
    # Only the repositories that were on the removed node move.
    assert moved == [repo for repo in repos if before[repo] == "node-4"]
    assert rendezvous_node(REPO, []) is None


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({"phase": "Failed", "reason": "DeadlineExceeded"}, "BINDER_BUILD_TIMEOUT=60s"),
        (
            {"containerStatuses": [{"state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]},
            "ran out of memory",
        ),
        (
            {"containerStatuses": [{"state": {"terminated": {"reason": "Error", "exitCode": 1}}}]},
            "exit code 1): Error",
        ),
        ({"message": "node lost"}, "The build pod failed: node lost"),
    ],
)
def test_failed_pods_say_why(status: dict[str, Any], message: str) -> None:
    assert message in pod_failure_message({"status": status}, timeout=60)


def test_kubernetes_is_a_builder_the_config_can_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import binder_actors.builders.kubernetes as kube

    monkeypatch.setattr(kube, "load_api_client", lambda: ApiClient())
    executor = make_executor(BinderConfig(builder="kubernetes", build_memory_limit="1Gi", kube_namespace="builds"))
    assert isinstance(executor, KubernetesBuildExecutor)
    assert executor.namespace == "builds"
    assert executor.settings.memory_limit == "1Gi"
