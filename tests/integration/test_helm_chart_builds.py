"""A build under the Helm chart's configuration, against the Kubernetes API emulator: the env the chart gives
the Ray pods, loaded as BinderConfig, drives the real executor, and what it asks of the API is what the chart's
Role grants, on a pod the chart's NetworkPolicy fences and that pushes with the chart's docker config."""

from __future__ import annotations

import asyncio
import re

import kubernetes_validate
import pytest
from kubernetes.client import CoreV1Api

from binder_actors.builders.kubernetes import KubernetesBuildExecutor
from binder_actors.events import BinderEvent
from tests.helm_chart import NAMESPACE, PRODUCTION, by_kind_and_name, loaded_config, only, render
from tests.kube_builds import DEADLINE, r2d, request_for, run
from tests.kube_emulator import KubeEmulator
from tests.unit.test_manifests import KUBERNETES_VERSION

# /api/v1/namespaces/<ns>/pods[/<name>[/log]], as the emulator records each request's path.
POD_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods(?:/(?P<name>[^/]+)(?P<log>/log)?)?$")


def granted_by_the_role(objects: dict) -> set[tuple[str, str]]:
    (role,) = [item for (kind, _), item in objects.items() if kind == "Role"]
    return {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}


def needed_for(method: str, path: str) -> set[tuple[str, str]]:
    """The RBAC (resource, verb) pairs one request needs; a collection GET is a list or a watch."""
    match = POD_PATH.match(path)
    assert match, path  # only pods and their logs: nothing the Role does not name
    assert match["ns"] == NAMESPACE, path  # the Role is the release namespace's
    if match["log"]:
        return {("pods/log", "get")}
    if match["name"] is None:
        return {("pods", "create")} if method == "POST" else {("pods", "list"), ("pods", "watch")}
    return {("pods", {"GET": "get", "DELETE": "delete"}[method])}


def test_a_build_under_the_charts_configuration_stays_within_its_role_and_policy(
    emulator: KubeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = by_kind_and_name(render(PRODUCTION))
    config = loaded_config(objects, monkeypatch)
    executor = KubernetesBuildExecutor(config, CoreV1Api(emulator.api_client()))
    request = request_for(image_prefix=config.registry.image_prefix)
    events: list[BinderEvent] = []

    async def emit(event: BinderEvent) -> None:
        events.append(event)

    async def scenario() -> None:
        build = asyncio.create_task(executor.build(request, emit))
        await asyncio.to_thread(
            emulator.wait_for, lambda: emulator.pod(request.build_name, NAMESPACE) is not None, DEADLINE
        )
        emulator.set_phase(request.build_name, "Running", NAMESPACE)
        emulator.log(request.build_name, r2d("Pushing image", "pushing"), namespace=NAMESPACE)
        emulator.set_phase(request.build_name, "Succeeded", NAMESPACE)
        await build

    run(scenario)
    assert any(event.phase == "pushing" for event in events)
    assert emulator.pod(request.build_name, NAMESPACE) is None  # deleted when done

    (pod,) = emulator.created
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    policy = only(objects, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (push,) = [volume["secret"]["secretName"] for volume in pod["spec"]["volumes"] if "secret" in volume]
    assert "config.json" in objects["Secret", push]["data"]
    assert pod["spec"]["nodeSelector"] == PRODUCTION["config"]["build_node_selector"]

    granted = granted_by_the_role(objects)
    asked = set().union(*(needed_for(method, path) for method, path in emulator.requests))
    assert ("pods", "create") in asked and ("pods/log", "get") in asked  # the test saw a whole build
    assert asked <= granted, asked - granted
