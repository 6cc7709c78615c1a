"""The Helm chart as Helm renders it (helm-python-sdk, Helm's Go SDK): it lints, every object it renders is valid
(KubeRay's CRD strictly, the rest with kubernetes-validate), the plain manifests are its default output, its values
schema is BinderConfig's settings, and secret values appear in Secrets only."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

import serve_app
from binder_actors.builders.kube_pod import BuildPodSettings, make_build_pod
from binder_actors.config import PROJECT_DIR, BinderConfig
from serve_app.paths import route_prefix
from tests.helm_chart import (
    CHART,
    GITHUB_TOKEN,
    HUB_TOKEN,
    MANIFEST_HEADER,
    MANIFESTS,
    NAMESPACE,
    PRODUCTION,
    REGISTRY_PASSWORD,
    by_kind_and_name,
    loaded_config,
    only,
    ray_env,
    render,
    render_template,
    settings_schemas,
    values_schema,
)
from tests.unit.test_manifests import KUBERAY, KUBERNETES_VERSION, crd_schema, errors, unknown_keys

RELEASES = {"default": None, "production": PRODUCTION}

needs_kuberay = pytest.mark.skipif(not KUBERAY.is_dir(), reason="needs the KubeRay CRDs in ../shared/kuberay")


@pytest.fixture(scope="module", params=sorted(RELEASES))
def release(request: pytest.FixtureRequest) -> tuple[dict[str, Any] | None, dict[tuple[str, str], dict[str, Any]]]:
    """(values, the rendered objects by kind and name) of each release."""
    values = RELEASES[request.param]
    return values, by_kind_and_name(render(values))


def test_chart_lints_with_only_the_undownloaded_hub_dependency_to_say() -> None:
    for values in RELEASES.values():
        report = helm_python.lint(CHART, values, kube_version="v1.33.0")
        assert report["errors"] == []
        warnings = [message["error"] for message in report["messages"] if message["severity"] >= 2]
        assert warnings == ["chart directory is missing these dependencies: jupyterhub"]


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_release_renders_the_objects_of_its_values(name: str) -> None:
    kinds = sorted(kind for kind, _ in by_kind_and_name(render(RELEASES[name])))
    base = ["DaemonSet", "NetworkPolicy", "RayService", "Role", "RoleBinding", "Secret", "ServiceAccount"]
    assert kinds == sorted(base + (["Ingress", "Secret"] if name == "production" else []))


@needs_kuberay
def test_every_rendered_object_is_valid(release: tuple[Any, dict[tuple[str, str], dict[str, Any]]]) -> None:
    _, objects = release
    rayservice_schema = jsonschema.Draft7Validator(crd_schema(KUBERAY / "ray.io_rayservices.yaml"))
    for (kind, _), item in objects.items():
        if kind == "RayService":
            assert errors(rayservice_schema, item) == []
            # The serve Service KubeRay makes from serveService is a Service as the API server checks it.
            service = {"apiVersion": "v1", "kind": "Service", **copy.deepcopy(item["spec"]["serveService"])}
            kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
        else:
            kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
        assert item["metadata"]["namespace"] == NAMESPACE


def test_plain_manifests_are_the_charts_default_output() -> None:
    for path, template in MANIFESTS.items():
        assert path.read_text() == MANIFEST_HEADER + render_template(template), (
            f"{path.name} differs from the chart: `python -m tests.helm_chart` writes it again"
        )


def test_hub_values_in_the_chart_are_cluster_jupyterhub_values() -> None:
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]
    assert chart_values.pop("enabled") is False  # renders need no downloaded z2jh; `helm dependency update` for it
    assert chart_values == yaml.safe_load((PROJECT_DIR / "cluster" / "jupyterhub" / "values.yaml").read_text())


def serve_config(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(only(objects, "RayService")["spec"]["serveConfigV2"])


def test_rendered_serve_config_imports_the_app_and_is_valid_for_serve(
    release: tuple[Any, dict[tuple[str, str], dict[str, Any]]],
) -> None:
    values, objects = release
    config = serve_config(objects)
    ServeDeploySchema.model_validate(config)
    assert unknown_keys(ServeDeploySchema, config) == []
    (application,) = config["applications"]
    assert application["import_path"] == "serve_app:app"
    (ingress,) = application["deployments"]
    assert ingress["name"] == serve_app.BinderIngress.name
    serve = (values or {}).get("serve", {})
    autoscaling = ingress["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (
        serve.get("minReplicas", 2),
        serve.get("maxReplicas", 20),
    )


@pytest.mark.parametrize("base_url", ["/", "/binder/", "binder", "/a/b/"])
def test_serve_route_prefix_is_the_base_url_as_serve_app_serves_it(base_url: str) -> None:
    (application,) = serve_config(by_kind_and_name(render({"config": {"base_url": base_url}})))["applications"]
    assert application["route_prefix"] == route_prefix(BinderConfig(base_url=base_url).base_path)


def test_head_runs_no_work_and_the_worker_group_autoscales(
    release: tuple[Any, dict[tuple[str, str], dict[str, Any]]],
) -> None:
    cluster = only(release[1], "RayService")["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (workers,) = cluster["workerGroupSpecs"]
    assert 1 <= workers["minReplicas"] <= workers["replicas"] < workers["maxReplicas"]


def test_rendered_env_loads_as_the_configured_binder_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = loaded_config(by_kind_and_name(render(PRODUCTION)), monkeypatch)
    assert config.builder == "kubernetes"
    assert config.kubernetes.namespace == NAMESPACE
    assert config.registry.kind == "oci" and config.registry.url == "https://registry.example.org"
    assert config.registry.password.get_secret_value() == REGISTRY_PASSWORD
    assert config.hub_api_token.get_secret_value() == HUB_TOKEN
    assert config.providers.github_access_token.get_secret_value() == GITHUB_TOKEN
    assert config.quotas.per_repo_quota == 20 and config.quotas.spec_config[0].quota == 50
    assert config.quotas.high_quota_specs == ["^binder-examples/.*"]
    assert config.kubernetes.tolerations == PRODUCTION["config"]["build_tolerations"]
    assert config.registry.cache_hit_ttl == 1000000  # a large number passes as JSON, not as 1e+06


def test_default_env_loads_too(monkeypatch: pytest.MonkeyPatch) -> None:
    config = loaded_config(by_kind_and_name(render()), monkeypatch)
    assert (config.builder, config.kubernetes.docker_socket, config.max_concurrent_builds) == ("kubernetes", "dind", 8)


def test_build_pods_are_fenced_by_the_policy_and_push_with_the_charts_docker_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = by_kind_and_name(render(PRODUCTION))
    config = loaded_config(objects, monkeypatch)
    pod = make_build_pod(
        name="build-x",
        image="img:1",
        repo_url="https://github.com/a/b",
        ref="1",
        settings=BuildPodSettings.from_config(config),
    ).to_dict()
    policy = only(objects, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["ingress"] == []
    (blocked,) = [rule["to"][0]["ipBlock"] for rule in policy["egress"] if "ipBlock" in rule.get("to", [{}])[0]]
    assert blocked["cidr"] == "0.0.0.0/0" and "169.254.0.0/16" in blocked["except"]  # no cloud metadata
    assert PRODUCTION["buildNetworkPolicy"]["extraEgress"][0] in policy["egress"]

    (push,) = [volume for volume in pod["spec"]["volumes"] if volume["secret"]]
    docker_config = json.loads(
        base64.b64decode(objects["Secret", push["secret"]["secret_name"]]["data"]["config.json"])
    )
    auth = base64.b64decode(docker_config["auths"]["registry.example.org"]["auth"]).decode()
    assert auth == f"binder-bot:{REGISTRY_PASSWORD}"

    (socket,) = [volume for volume in pod["spec"]["volumes"] if volume["host_path"]]
    dind = only(objects, "DaemonSet")["spec"]["template"]["spec"]
    (socket_dir,) = [volume for volume in dind["volumes"] if volume["name"] == "socket-dir"]
    assert Path(socket["host_path"]["path"]).parent == Path(socket_dir["hostPath"]["path"])


def test_ingress_reaches_the_serve_service_kuberay_keeps_current() -> None:
    objects = by_kind_and_name(render(PRODUCTION))
    service = only(objects, "RayService")["spec"]["serveService"]
    (rule,) = only(objects, "Ingress")["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert rule["host"] == "mybinder.example.org"
    assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"number": 8000}}
    assert service["spec"]["type"] == "LoadBalancer"


def test_no_secret_value_appears_outside_the_secrets() -> None:
    secrets = [HUB_TOKEN, REGISTRY_PASSWORD, GITHUB_TOKEN]
    encoded = [base64.b64encode(secret.encode()).decode() for secret in secrets]
    seen_in_secrets = ""
    for (kind, name), item in by_kind_and_name(render(PRODUCTION)).items():
        text = yaml.safe_dump(item)
        if kind == "Secret":
            seen_in_secrets += text
            continue
        for value in secrets + encoded:
            assert value not in text, f"{kind} {name}"
    assert all(value in seen_in_secrets for value in encoded)  # the test looks where they are


def test_an_existing_secret_is_read_and_not_rendered() -> None:
    objects = by_kind_and_name(render({"secret": {"existingSecret": "binder-secrets"}}))
    assert [name for kind, name in objects if kind == "Secret"] == []
    refs = [var["valueFrom"]["secretKeyRef"] for var in ray_env(objects) if "secretKeyRef" in var.get("valueFrom", {})]
    assert {ref["name"] for ref in refs} == {"binder-secrets"}
    assert {ref["key"] for ref in refs} == {"hub_api_token", "registry_username", "registry_password"}


def test_a_push_secret_cannot_be_made_from_an_existing_secret() -> None:
    values = {"secret": {"existingSecret": "binder-secrets"}, "buildPushSecret": {"create": True}}
    with pytest.raises(helm_python.HelmError, match="cannot with secret.existingSecret"):
        render(values)


def test_values_schema_holds_binder_configs_settings() -> None:
    plain, secret = settings_schemas()
    schema = values_schema()["properties"]
    assert schema["config"]["properties"] == plain, "`python -m tests.helm_chart` writes them again"
    assert schema["secret"]["properties"]["values"]["properties"] == secret


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"config": {"max_sessions": "lots"}}, "at '/config/max_sessions': got string, want integer"),
        ({"config": {"buidler": "kubernetes"}}, "at '/config': additional properties 'buidler' not allowed"),
        ({"config": {"hub_api_token": "x"}}, "at '/config': additional properties 'hub_api_token' not allowed"),
        ({"config": {"build_docker_socket": "docker"}}, "at '/config/build_docker_socket'"),
        ({"config": {"per_repo_quota": -1}}, "at '/config/per_repo_quota': minimum: got -1, want 0"),
        ({"workers": {"maxReplicas": "ten"}}, "at '/workers/maxReplicas': got string, want integer"),
        ({"rayVersion": 2.6}, "at '/rayVersion': got number, want string"),
        ({"ingress": {"enabeld": True}}, "at '/ingress': additional properties 'enabeld' not allowed"),
    ],
)
def test_values_schema_refuses_a_bad_value_naming_it(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(values)
    assert complaint in str(refused.value)


def test_hub_dependency_is_well_formed_and_follows_its_condition(tmp_path: Path) -> None:
    """With a stand-in z2jh where `helm dependency update` would put it: Helm accepts the entry, renders the
    subchart only when jupyterhub.enabled, and hands it the chart's hub values."""
    (entry,) = helm_python.dependency_list(CHART)
    assert (entry["name"], entry["repository"], entry["status"]) == (
        "jupyterhub",
        "https://hub.jupyter.org/helm-chart/",
        "missing",  # not "invalid version": the range parses
    )
    chart = tmp_path / "binder-actors"
    shutil.copytree(CHART, chart)
    stand_in = chart / "charts" / "jupyterhub"
    (stand_in / "templates").mkdir(parents=True)
    (stand_in / "templates" / "values.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hub-values\n"
        "data:\n  hub: {{ toJson .Values.hub | quote }}\n"
    )
    statuses = {}
    for version in ("4.3.3", "5.0.0"):  # the last one stays
        (stand_in / "Chart.yaml").write_text(f"apiVersion: v2\nname: jupyterhub\nversion: {version}\n")
        (entry,) = helm_python.dependency_list(chart)
        statuses[version] = entry["status"]
    assert statuses == {"4.3.3": "wrong version", "5.0.0": "unpacked"}  # Helm checks the range, and takes 5.x
    assert ("ConfigMap", "hub-values") not in by_kind_and_name(render(None, chart))
    rendered = by_kind_and_name(render({"jupyterhub": {"enabled": True}}, chart))
    hub = json.loads(rendered["ConfigMap", "hub-values"]["data"]["hub"])
    assert "admin:groups" in hub["loadRoles"]["binder-actors"]["scopes"]
    assert "KubeBinderSpawner" in hub["extraConfig"]["binder-actors"]


def test_gcs_fault_tolerance_options_reach_the_ray_cluster_only_when_given() -> None:
    def options(values: dict[str, Any] | None) -> Any:
        cluster = only(by_kind_and_name(render(values)), "RayService")["spec"]["rayClusterConfig"]
        return cluster.get("gcsFaultToleranceOptions")

    assert options(None) is None
    assert options(PRODUCTION) == PRODUCTION["gcsFaultToleranceOptions"]


@needs_kuberay
def test_readmes_values_and_command_line_render_a_valid_release() -> None:
    """cluster/README.md's my-values.yaml, with the secrets its `helm install` sets, as an operator would."""
    readme = (PROJECT_DIR / "cluster" / "README.md").read_text()
    (snippet,) = re.findall(r"```yaml\n(# my-values\.yaml\n.*?)```", readme, re.DOTALL)
    values = yaml.safe_load(snippet)
    (command,) = re.findall(r"helm install binder-actors .*?\n(?=\S)", readme, re.DOTALL)
    settings = re.findall(r"--set (\S+)=(\S+)", command)
    token_ends = {"secret.values.hub_api_token", "jupyterhub.hub.services.binder-actors.apiToken"}
    assert token_ends <= {name for name, _ in settings}  # binder-actors and the hub get the same token
    for name, _ in settings:
        target = values
        *parents, leaf = name.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = f"secret-from-the-command-line-{leaf}"
    objects = by_kind_and_name(render(values))
    rayservice_schema = jsonschema.Draft7Validator(crd_schema(KUBERAY / "ray.io_rayservices.yaml"))
    assert errors(rayservice_schema, only(objects, "RayService")) == []
    for (kind, _), item in objects.items():
        if kind != "RayService":
            kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
    assert ("Ingress", "binder-actors") in objects and ("Secret", "binder-build-docker-config") in objects


def test_readmes_kubectl_secret_has_the_keys_ray_cluster_yaml_reads() -> None:
    """Without Helm, the Secret made by hand must be the one ray-cluster.yaml's secretKeyRefs name."""
    readme = (PROJECT_DIR / "cluster" / "README.md").read_text()
    (command,) = re.findall(
        r"kubectl -n binder create secret generic (\S+) (--from-literal.*?)\n```", readme, re.DOTALL
    )
    name, literals = command
    rayservice = yaml.safe_load((PROJECT_DIR / "ray-cluster.yaml").read_text())
    env = ray_env({("RayService", "binder-actors"): rayservice})
    refs = [var["valueFrom"]["secretKeyRef"] for var in env if "secretKeyRef" in var.get("valueFrom", {})]
    assert {ref["name"] for ref in refs} == {name}
    assert {ref["key"] for ref in refs} == set(re.findall(r"--from-literal=(\w+)=", literals))
