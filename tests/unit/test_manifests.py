"""Every deployment artefact is known valid: the RayService against KubeRay's CRD (strictly), its Serve
config against Ray's own schema, the other manifests with kubernetes-validate, the Helm values by content."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pydantic
import pytest
import yaml
from jupyterhub.scopes import scope_definitions
from ray.serve.schema import ServeDeploySchema
from traitlets.utils.importstring import import_item

from binder_actors.config import PROJECT_DIR, BinderConfig
from binder_actors.config_groups import FLAT_SETTINGS, GROUPS

# The team's shared copy of KubeRay v1.7.0's CRDs: beside the checkout, or where BINDER_KUBERAY_CRDS says.
KUBERAY = next(
    (
        path
        for path in (
            Path(os.environ.get("BINDER_KUBERAY_CRDS", "/nonexistent")),
            PROJECT_DIR.parent / "shared" / "kuberay",
            Path("/work/shared/kuberay"),
        )
        if path.is_dir()
    ),
    PROJECT_DIR.parent / "shared" / "kuberay",
)
RAY_CLUSTER = PROJECT_DIR / "ray-cluster.yaml"
CLUSTER = PROJECT_DIR / "cluster"
HELM_VALUES = {CLUSTER / "jupyterhub" / "values.yaml"}
CHART = CLUSTER / "helm"  # templates, not manifests: tests/unit/test_helm_chart.py renders and checks them
KUBERNETES_VERSION = "1.33.0"  # a version kubernetes-validate ships schemas for; any recent cluster accepts these kinds

pytestmark = pytest.mark.skipif(not KUBERAY.is_dir(), reason="needs the KubeRay CRDs in ../shared/kuberay")


def strict(schema: Any) -> Any:
    """The schema with unknown fields made errors, wherever it lists properties and does not keep unknown ones."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    return tightened


def crd_schema(path: Path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    (v1,) = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
    return strict(v1["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module")
def rayservice_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(crd_schema(KUBERAY / "ray.io_rayservices.yaml"))


@pytest.fixture(scope="module")
def rayservice() -> dict[str, Any]:
    return yaml.safe_load(RAY_CLUSTER.read_text())


def errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def test_ray_cluster_yaml_is_a_valid_rayservice(
    rayservice_validator: jsonschema.Draft7Validator, rayservice: dict[str, Any]
) -> None:
    assert rayservice["apiVersion"] == "ray.io/v1"
    assert rayservice["kind"] == "RayService"
    assert errors(rayservice_validator, rayservice) == []


def test_kuberays_own_sample_passes_the_strict_schema(rayservice_validator: jsonschema.Draft7Validator) -> None:
    """The strictness refuses only what the CRD does not know, not what it does."""
    sample = yaml.safe_load((KUBERAY / "ray-service.sample.yaml").read_text())
    assert errors(rayservice_validator, sample) == []


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        (("spec", "rayClusterConfig", "enableInTreeAutoscalng"), True, "enableInTreeAutoscalng"),
        (("spec", "serveConfigv2"), "applications: []", "serveConfigv2"),
        (("spec", "rayClusterConfig", "workerGroupSpecs", 0, "minReplica"), 1, "minReplica"),
        (
            ("spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "containers", 0, "imagePullPolicyy"),
            "Always",
            "imagePullPolicyy",
        ),
        (
            ("spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "serviceAcountName"),
            "binder-actors",
            "serviceAcountName",
        ),
        (("spec", "rayClusterConfig", "workerGroupSpecs", 0, "maxReplicas"), "ten", "is not of type 'integer'"),
        (("spec", "rayClusterConfig", "headGroupSpec", "rayStartParams", "num-cpus"), 0, "is not of type 'string'"),
    ],
)
def test_misspelt_or_mistyped_fields_are_errors(
    rayservice_validator: jsonschema.Draft7Validator,
    rayservice: dict[str, Any],
    path: tuple[str | int, ...],
    value: Any,
    complaint: str,
) -> None:
    broken = copy.deepcopy(rayservice)
    target = broken
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value  # type: ignore[index]
    found = errors(rayservice_validator, broken)
    assert any(complaint in error for error in found), found


def containers(rayservice: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) of the head and of every worker group."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        for container in pod["containers"]:
            yield pod, container


def test_head_runs_no_work_and_workers_autoscale(rayservice: dict[str, Any]) -> None:
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (workers,) = cluster["workerGroupSpecs"]
    assert 1 <= workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    assert cluster["rayVersion"] == __import__("ray").__version__  # the image's Ray is the project's Ray


def test_ray_pods_use_the_rbac_service_account_and_set_resources(rayservice: dict[str, Any]) -> None:
    accounts = [doc["metadata"]["name"] for doc in load_all(CLUSTER / "rbac.yaml") if doc["kind"] == "ServiceAccount"]
    for pod, container in containers(rayservice):
        assert pod["serviceAccountName"] in accounts
        assert {"requests", "limits"} <= set(container["resources"]), container["name"]


def test_every_env_var_is_a_setting_and_secrets_come_from_secrets(rayservice: dict[str, Any]) -> None:
    settings = (set(BinderConfig.model_fields) - set(GROUPS)) | set(FLAT_SETTINGS)  # a group's by flat names
    secret_refs = {}
    for _, container in containers(rayservice):
        for variable in container["env"]:
            name = variable["name"]
            assert name.startswith("BINDER_") and name.removeprefix("BINDER_").lower() in settings, name
            ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret_refs[name] = ref
    for needed in ("BINDER_HUB_API_TOKEN", "BINDER_REGISTRY_USERNAME", "BINDER_REGISTRY_PASSWORD"):
        assert needed in secret_refs, needed


def serve_config(rayservice: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])


def model_classes(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic models a field's annotation may hold (through Optional, Union, list, dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict, typing.Annotated):
        return [model for argument in typing.get_args(annotation) for model in model_classes(argument)]
    return []


def unknown_keys(model: type[pydantic.BaseModel], data: Any, where: str = "") -> list[str]:
    """Keys of `data` that `model` does not declare, at every level: Serve's schema ignores them silently."""
    if isinstance(data, list):
        return [key for index, item in enumerate(data) for key in unknown_keys(model, item, f"{where}[{index}]")]
    if not isinstance(data, dict):
        return []
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    found = []
    for key, value in data.items():
        if key not in fields:
            found.append(f"{where}.{key}")
            continue
        for inner in model_classes(fields[key].annotation):
            found += unknown_keys(inner, value, f"{where}.{key}")
    return found


def test_serve_config_is_valid_for_ray_serve(rayservice: dict[str, Any]) -> None:
    config = serve_config(rayservice)
    ServeDeploySchema.model_validate(config)
    assert unknown_keys(ServeDeploySchema, config) == []


@pytest.mark.parametrize(
    ("deployment", "unknown"),
    [
        ({"autoscalng_config": {}}, ".autoscalng_config"),
        ({"autoscaling_config": {"min_replica": 1}}, ".autoscaling_config.min_replica"),
        ({"ray_actor_options": {"num_cpu": 1}}, ".ray_actor_options.num_cpu"),
    ],
)
def test_unknown_serve_config_keys_are_caught(deployment: dict[str, Any], unknown: str) -> None:
    config = {"applications": [{"import_path": "serve_app:app", "deployments": [{"name": "X", **deployment}]}]}
    ServeDeploySchema.model_validate(config)  # Ray accepts it silently...
    assert unknown_keys(ServeDeploySchema, config) == [".applications[0].deployments[0]" + unknown]  # ...we do not


def test_serve_config_imports_the_app_and_autoscales_its_ingress(rayservice: dict[str, Any]) -> None:
    from ray.serve import Application

    import serve_app

    (application,) = serve_config(rayservice)["applications"]
    assert application["import_path"] == "serve_app:app"
    module, attribute = application["import_path"].split(":")
    assert isinstance(getattr(__import__(module), attribute), Application)
    (ingress,) = application["deployments"]
    assert ingress["name"] == serve_app.BinderIngress.name
    autoscaling = ingress["autoscaling_config"]
    assert 1 <= autoscaling["min_replicas"] < autoscaling["max_replicas"]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def cluster_manifests() -> list[Path]:
    return sorted(path for path in CLUSTER.rglob("*.yaml") if path not in HELM_VALUES and CHART not in path.parents)


@pytest.mark.parametrize("path", cluster_manifests(), ids=lambda path: str(path.relative_to(PROJECT_DIR)))
def test_cluster_manifests_are_valid_kubernetes(path: Path) -> None:
    documents = load_all(path)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validate_catches_a_misspelt_field() -> None:
    (role,) = [doc for doc in load_all(CLUSTER / "rbac.yaml") if doc["kind"] == "Role"]
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, KUBERNETES_VERSION, strict=True)


def test_role_allows_what_the_build_executor_does() -> None:
    (role,) = [doc for doc in load_all(CLUSTER / "rbac.yaml") if doc["kind"] == "Role"]
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    needed = {("pods", verb) for verb in ("create", "get", "list", "watch", "delete")} | {("pods/log", "get")}
    assert needed <= granted


@pytest.fixture(scope="module")
def hub_values() -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / "jupyterhub" / "values.yaml").read_text())


def test_hub_values_hand_culling_to_binder_actors_and_keep_no_storage(hub_values: dict[str, Any]) -> None:
    assert hub_values["cull"]["enabled"] is False
    assert hub_values["singleuser"]["storage"]["type"] == "none"


def test_hub_values_name_an_importable_binder_spawner(hub_values: dict[str, Any]) -> None:
    from binder_actors.spawners import BinderSpawnerMixin

    extra = "\n".join(hub_values["hub"]["extraConfig"].values())
    (path,) = re.findall(r'c\.JupyterHub\.spawner_class = "([\w.]+)"', extra)
    spawner = import_item(path)
    assert issubclass(spawner, BinderSpawnerMixin)
    assert spawner.__name__ in re.findall(r"c\.(\w+)\.", extra)  # settings go to the class in use


def test_hub_service_role_uses_real_scopes_for_its_service(hub_values: dict[str, Any]) -> None:
    hub = hub_values["hub"]
    (service,) = hub["services"]
    role = hub["loadRoles"][service]
    assert role["services"] == [service]
    assert set(role["scopes"]) <= set(scope_definitions), set(role["scopes"]) - set(scope_definitions)
    for needed in ("admin:users", "admin:servers", "admin:groups", "read:users:activity"):
        assert needed in role["scopes"]


def test_readmes_gcs_fault_tolerance_snippet_is_valid_in_the_rayservice(
    rayservice_validator: jsonschema.Draft7Validator, rayservice: dict[str, Any]
) -> None:
    readme = (CLUSTER / "README.md").read_text()
    (snippet,) = re.findall(r"```yaml\n(gcsFaultToleranceOptions:.*?)```", readme, re.DOTALL)
    with_redis = copy.deepcopy(rayservice)
    with_redis["spec"]["rayClusterConfig"].update(yaml.safe_load(snippet))
    assert errors(rayservice_validator, with_redis) == []


def test_spawners_module_needs_kubespawner_only_for_the_kube_spawner() -> None:
    probe = (
        "import sys, binder_actors.spawners as s; assert 'kubespawner' not in sys.modules; "
        "s.KubeBinderSpawner; assert 'kubespawner' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=PROJECT_DIR)
