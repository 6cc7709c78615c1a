"""The Helm chart as Helm's own engine renders it (helm-python-sdk binds Helm's Go SDK), a production-like
release of it, the env its Ray pods get loaded as BinderConfig, and the values schema of binder-actors' settings,
derived from BinderConfig so that the chart's schema cannot drift from it.
"""

from __future__ import annotations

import base64
import json
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import helm_python
import pydantic
import pytest
import yaml
from pydantic import SecretStr

from binder_actors.config import PROJECT_DIR, BinderConfig, ProviderSettings
from binder_actors.config_groups import GROUPS

CHART = PROJECT_DIR / "cluster" / "helm" / "binder-actors"
RELEASE = "binder-actors"
NAMESPACE = "binder"
# The chart sets BINDER_KUBE_NAMESPACE itself, to the release's namespace.
CHART_SET = {"kube_namespace"}
# Credentials that are not SecretStr settings but belong in the Secret with the password they go with.
CREDENTIALS = {"registry_username"}


def render(values: dict[str, Any] | None = None, chart: Path = CHART) -> list[dict[str, Any]]:
    """Every object the chart renders for `values` (merged over its defaults), in template order."""
    manifests = helm_python.Chart.load(chart).render(values, name=RELEASE, namespace=NAMESPACE)
    return [
        document
        for _, text in sorted(manifests.items())
        for document in yaml.safe_load_all(text)
        if document  # a template whose condition is off renders only comments
    ]


def by_kind_and_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(item["kind"], item["metadata"]["name"]): item for item in objects}


def settings() -> dict[str, pydantic.fields.FieldInfo]:
    """Every setting by the name users write (flat names, providers__<name>), with its field."""
    fields: dict[str, pydantic.fields.FieldInfo] = {}
    for name, field in BinderConfig.model_fields.items():
        if name in GROUPS:
            model = GROUPS[name]
            fields.update({flat: model.model_fields[inner] for inner, flat in model.flat_names().items()})
        elif name == "providers":
            fields.update({f"providers__{inner}": info for inner, info in ProviderSettings.model_fields.items()})
        else:
            fields[name] = field
    return fields


def is_secret(name: str, field: pydantic.fields.FieldInfo) -> bool:
    return field.annotation is SecretStr or name in CREDENTIALS


def value_schema(field: pydantic.fields.FieldInfo) -> dict[str, Any]:
    """The JSON schema of one setting's value as values.yaml holds it (its bounds and choices kept)."""
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        schema: dict[str, Any] = {"enum": list(typing.get_args(annotation))}
    elif typing.get_origin(annotation) in (list, dict, types.UnionType):
        kinds = {list: "array", dict: "object"}
        members = typing.get_args(annotation) if typing.get_origin(annotation) is types.UnionType else [annotation]
        found = sorted({kinds[typing.get_origin(member) or member] for member in members})
        schema = {"type": found[0] if len(found) == 1 else found}
    elif annotation is Path:
        schema = {"type": "string"}
    else:
        bounded = Annotated[(annotation, *field.metadata)] if field.metadata else annotation
        schema = pydantic.TypeAdapter(bounded).json_schema()
    if field.description:
        schema["description"] = field.description
    return schema


def settings_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The schemas of the chart's `config` (plain settings) and `secret.values` (secret ones)."""
    plain, secret = {}, {}
    for name, field in sorted(settings().items()):
        if name in CHART_SET:
            continue
        if is_secret(name, field):
            secret[name] = {"type": "string", "description": field.description}
        else:
            plain[name] = value_schema(field)
    return plain, secret


def values_schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


# Secret values no other object may carry, in any encoding.
HUB_TOKEN = "hub-" + "token-only-in-the-secret"
REGISTRY_PASSWORD = "registry-" + "password-only-in-the-secret"
GITHUB_TOKEN = "ghp_" + "OnlyInTheSecret0000000000"

# A production-like release: an OCI registry with credentials, docker-in-docker builds, an Ingress with TLS,
# quotas, a private GitHub token, GCS fault tolerance, a LoadBalancer, an extra egress rule for an in-cluster registry.
PRODUCTION: dict[str, Any] = {
    "image": {"repository": "registry.example.org/binder/binder-actors", "tag": "1.2.3"},
    "config": {
        "public_url": "https://mybinder.example.org/",
        "hub_url": "https://hub.mybinder.example.org/",
        "image_prefix": "registry.example.org/binder/r2d-",
        "registry": "oci",
        "registry_url": "https://registry.example.org",
        "build_docker_socket": "dind",
        "build_push_secret": "binder-push",
        "build_node_selector": {"binder.example.org/builds": "true"},
        "build_tolerations": [{"key": "builds", "operator": "Exists", "effect": "NoSchedule"}],
        "max_sessions": 300,
        "per_repo_quota": 20,
        "per_repo_quota_higher": 100,
        "high_quota_specs": ["^binder-examples/.*"],
        "spec_config": [{"pattern": "^ines/spacy-binder.*", "quota": 50}],
        "banned_specs": ["^evil/.*"],
        "rate_limit": 60,
        "cull_max_age": 21600,
        "image_cache_hit_ttl": 1000000,
    },
    "secret": {
        "values": {
            "hub_api_token": HUB_TOKEN,
            "registry_username": "binder-bot",
            "registry_password": REGISTRY_PASSWORD,
            "providers__github_access_token": GITHUB_TOKEN,
        }
    },
    "buildPushSecret": {"create": True},
    "workers": {"minReplicas": 2, "replicas": 2, "maxReplicas": 30},
    "serve": {"minReplicas": 4, "maxReplicas": 60},
    "gcsFaultToleranceOptions": {
        "redisAddress": "redis.binder.svc.cluster.local:6379",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "binder-redis", "key": "password"}}},
    },
    "service": {"type": "LoadBalancer", "annotations": {"example.org/lb": "internal"}},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "host": "mybinder.example.org",
        "tlsSecret": "mybinder-tls",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"},
    },
    "buildNetworkPolicy": {
        "extraEgress": [{"to": [{"podSelector": {"matchLabels": {"app": "registry"}}}], "ports": [{"port": 5000}]}]
    },
}


def only(objects: dict[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [item for (item_kind, _), item in objects.items() if item_kind == kind]
    return found


def ray_env(objects: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, str]]:
    """The env of every Ray container (head and workers), which must all agree."""
    cluster = only(objects, "RayService")["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    envs = [container["env"] for group in groups for container in group["template"]["spec"]["containers"]]
    assert all(env == envs[0] for env in envs)
    return envs[0]


def resolved_env(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    """The Ray pods' BINDER_* variables as the kubelet sets them: values, the namespace, the Secret's keys."""
    environment = {}
    for variable in ray_env(objects):
        source = variable.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = objects["Secret", ref["name"]]["data"]
            environment[variable["name"]] = base64.b64decode(data[ref["key"]]).decode()
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace"
            environment[variable["name"]] = NAMESPACE
        else:
            environment[variable["name"]] = variable["value"]
    return environment


def loaded_config(objects: dict[tuple[str, str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> BinderConfig:
    for name in [name for name in os.environ if name.upper().startswith("BINDER_")]:
        monkeypatch.delenv(name)
    for name, value in resolved_env(objects).items():
        monkeypatch.setenv(name, value)
    return BinderConfig()


# The plain manifests (kubectl apply, cluster/README.md) are the chart's default output, template by template.
MANIFESTS = {
    PROJECT_DIR / "ray-cluster.yaml": "rayservice.yaml",
    PROJECT_DIR / "cluster" / "rbac.yaml": "rbac.yaml",
    PROJECT_DIR / "cluster" / "dind.yaml": "dind.yaml",
}
MANIFEST_HEADER = """\
# Rendered from the chart cluster/helm/binder-actors with its default values, release binder-actors in the
# namespace binder: `python -m tests.helm_chart` writes it again, and tests/unit/test_helm_chart.py keeps it
# equal to the chart. For `kubectl apply` without Helm (cluster/README.md).
"""


def render_template(template: str) -> str:
    """One template's text for the default values."""
    manifests = helm_python.Chart.load(CHART).render(None, name=RELEASE, namespace=NAMESPACE)
    return manifests[f"{CHART.name}/templates/{template}"].strip() + "\n"


def write_settings_schema() -> None:
    """values.schema.json with its config and secret.values properties made again from BinderConfig."""
    schema = values_schema()
    plain, secret = settings_schemas()
    schema["properties"]["config"]["properties"] = plain
    schema["properties"]["secret"]["properties"]["values"]["properties"] = secret
    (CHART / "values.schema.json").write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    write_settings_schema()  # first: the manifests are rendered under the schema
    for path, template in MANIFESTS.items():
        path.write_text(MANIFEST_HEADER + render_template(template))
