"""The settings grouped by concern load from every form a user may have written: the flat env var, YAML key,
secret file and keyword (the names documented), and the nested group form; and errors name the flat env var.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from binder_actors.config import BinderConfig, ConfigError, config_environment
from binder_actors.config_groups import FLAT_NAMES, FLAT_SETTINGS, GROUPS


@pytest.fixture(autouse=True)
def no_binder_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the values a test gives: none from the developer's environment."""
    for name in [name for name in os.environ if name.startswith("BINDER_")]:
        monkeypatch.delenv(name)


# (flat name, group, field, a value that is not the default): at least one setting of every group, and every
# flat name that is not the group's prefix + the field's name.
CASES = [
    ("registry", "registry", "kind", "docker"),
    ("registry_url", "registry", "url", "http://127.0.0.1:5000"),
    ("image_prefix", "registry", "image_prefix", "registry.example.org/binder-"),
    ("image_cache_miss_ttl", "registry", "cache_miss_ttl", 0.0),
    ("image_cache_size", "registry", "cache_size", 7),
    ("image_store_max_gb", "registry", "store_max_gb", 2.5),
    ("docker_network", "docker", "network", "sessions-net"),
    ("docker_cpu_limit", "docker", "cpu_limit", 1.5),
    ("kube_namespace", "kubernetes", "namespace", "builds"),
    ("build_memory_limit", "kubernetes", "memory_limit", "2Gi"),
    ("build_node_selector", "kubernetes", "node_selector", {"pool": "build"}),
    ("build_extra_args", "kubernetes", "extra_args", ["--debug"]),
    ("max_sessions", "quotas", "max_sessions", 3),
    ("spec_config", "quotas", "spec_config", [{"pattern": "^gh/org/", "quota": 2}]),
    ("ban_networks", "access", "ban_networks", ["10.0.0.0/8"]),
    ("build_token_check_origin", "access", "build_token_check_origin", False),
    ("cull_every", "culling", "every", 3600),
    ("session_idle_timeout", "culling", "session_idle_timeout", 0),
    ("banner_message", "pages", "banner_message", "<b>Maintenance</b> at 18:00"),
    ("extra_footer_scripts", "pages", "extra_footer_scripts", {"analytics": "console.log(1)"}),
    ("repo_providers", "pages", "repo_providers", ["gh", "git"]),
]
IDS = [case[0] for case in CASES]


def env_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def loaded(config: BinderConfig, group: str, field: str) -> Any:
    value = getattr(getattr(config, group), field)
    return [item.model_dump() for item in value] if field == "spec_config" else value


@pytest.mark.parametrize(("flat", "group", "field", "value"), CASES, ids=IDS)
@pytest.mark.parametrize("form", ["flat env", "flat yaml", "flat secret file", "flat keyword", "nested env",
                                  "nested yaml", "nested keyword"])  # fmt: skip
def test_every_form_of_a_setting_lands_on_its_group_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, form: str, flat: str, group: str, field: str, value: Any
) -> None:
    keywords: dict[str, Any] = {}
    if form == "flat env":
        monkeypatch.setenv(f"BINDER_{flat.upper()}", env_text(value))
    elif form == "nested env":
        monkeypatch.setenv(f"BINDER_{group.upper()}__{field.upper()}", env_text(value))
    elif form in ("flat yaml", "nested yaml"):
        document = {flat: value} if form == "flat yaml" else {group: {field: value}}
        (tmp_path / "binder.yaml").write_text(yaml.safe_dump(document))
        monkeypatch.setenv("BINDER_CONFIG_FILE", str(tmp_path / "binder.yaml"))
    elif form == "flat secret file":
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / flat).write_text(env_text(value) + "\n")
        monkeypatch.setenv("BINDER_SECRETS_DIR", str(tmp_path / "secrets"))
    else:
        keywords = {flat: value} if form == "flat keyword" else {group: {field: value}}
    assert loaded(BinderConfig(**keywords), group, field) == value


def test_every_group_field_has_one_flat_name() -> None:
    fields = {(group, name) for group, model in GROUPS.items() for name in model.model_fields}
    assert set(FLAT_NAMES) == fields and len(FLAT_SETTINGS) == len(fields)
    # registry: the kind, a string; pool: the pinned rules, a JSON list
    assert not set(FLAT_SETTINGS) & (set(BinderConfig.model_fields) - {"registry", "pool"})


BAD_VALUES = [
    ("docker_mem_limit", "lots", "BINDER_DOCKER_MEM_LIMIT: 'lots' is not a memory size"),
    ("build_memory_request", "some", "BINDER_BUILD_MEMORY_REQUEST: 'some' is not a Kubernetes quantity"),
    ("max_sessions", -1, "BINDER_MAX_SESSIONS: Input should be greater than or equal to 0, not -1"),
    ("trusted_proxies", ["nowhere"], "BINDER_TRUSTED_PROXIES: 'nowhere' is not a network"),
    ("cull_timeout", 0, "BINDER_CULL_TIMEOUT: Input should be greater than 0, not 0"),
    ("image_cache_hit_ttl", -1, "BINDER_IMAGE_CACHE_HIT_TTL: Input should be greater than or equal to 0"),
    ("kube_namespace", 5, "BINDER_KUBE_NAMESPACE: Input should be a valid string"),
]
BAD_VALUE_FORMS = ["flat env", "flat yaml", "flat keyword", "nested keyword"]


@pytest.mark.parametrize(
    ("form", "flat", "bad", "message"),
    [
        (form, *case)
        for form in BAD_VALUE_FORMS
        for case in BAD_VALUES
        if not (form == "flat env" and case[0] == "kube_namespace")  # an env var is always a string
    ],
)
def test_a_bad_value_is_reported_under_its_flat_env_var(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, form: str, flat: str, bad: Any, message: str
) -> None:
    group, field = FLAT_SETTINGS[flat]
    keywords: dict[str, Any] = {}
    if form == "flat env":
        monkeypatch.setenv(f"BINDER_{flat.upper()}", env_text(bad))
    elif form == "flat yaml":
        (tmp_path / "binder.yaml").write_text(yaml.safe_dump({flat: bad}))
        monkeypatch.setenv("BINDER_CONFIG_FILE", str(tmp_path / "binder.yaml"))
    else:
        keywords = {flat: bad} if form == "flat keyword" else {group: {field: bad}}
    with pytest.raises(ConfigError, match=message):
        BinderConfig(**keywords)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ({"env": ("BINDER_MAX_SESSIONS", "5")}, {"yaml": {"quotas": {"max_sessions": 9}}}, 5),  # env beats YAML
        ({"env": ("BINDER_QUOTAS__MAX_SESSIONS", "5")}, {"yaml": {"max_sessions": 9}}, 5),
        ({"keyword": {"max_sessions": 4}}, {"env": ("BINDER_QUOTAS__MAX_SESSIONS", "5")}, 4),  # arguments beat env
        ({"keyword": {"quotas": {"max_sessions": 4}}}, {"env": ("BINDER_MAX_SESSIONS", "5")}, 4),
        # within one source the flat (documented) name wins
        ({"env": ("BINDER_MAX_SESSIONS", "5")}, {"env": ("BINDER_QUOTAS__MAX_SESSIONS", "6")}, 5),
        ({"keyword": {"max_sessions": 4}}, {"keyword": {"quotas": {"max_sessions": 7}}}, 4),
        ({"yaml": {"max_sessions": 9, "quotas": {"max_sessions": 8}}}, {}, 9),
    ],
)
def test_a_source_keeps_its_precedence_whichever_form_it_uses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, first: dict, second: dict, expected: int
) -> None:
    keywords: dict[str, Any] = {}
    for source in (first, second):
        if "env" in source:
            monkeypatch.setenv(*source["env"])
        if "yaml" in source:
            (tmp_path / "binder.yaml").write_text(yaml.safe_dump(source["yaml"]))
            monkeypatch.setenv("BINDER_CONFIG_FILE", str(tmp_path / "binder.yaml"))
        keywords |= source.get("keyword", {})
    assert BinderConfig(**keywords).quotas.max_sessions == expected


def test_the_builder_docker_still_looks_images_up_in_the_engine_unless_a_registry_is_named() -> None:
    assert BinderConfig(builder="docker").registry.kind == "docker"
    assert BinderConfig(builder="docker", registry="local").registry.kind == "local"
    assert BinderConfig(builder="docker", registry_url="http://127.0.0.1:5000").registry.kind == "docker"


def test_a_child_process_gets_the_flat_names_and_loads_an_equal_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = BinderConfig(data_dir=tmp_path, registry_password=SecretStr("s3cr3t"), **{c[0]: c[3] for c in CASES})
    exported = config_environment(config)
    assert exported["BINDER_DOCKER_NETWORK"] == "sessions-net" and "BINDER_DOCKER__NETWORK" not in exported
    assert "BINDER_REGISTRY_PASSWORD" not in exported
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    assert BinderConfig(registry_password=SecretStr("s3cr3t")) == config


def test_with_settings_changes_flat_and_nested_settings_and_checks_them(tmp_path: Path) -> None:
    config = BinderConfig(data_dir=tmp_path, cull_every=3600, docker_network="a")
    changed = config.with_settings(max_sessions=2, docker={"cpu_limit": 1.0})
    assert (changed.quotas.max_sessions, changed.docker.cpu_limit, changed.docker.network) == (2, 1.0, "a")
    assert (changed.culling.every, changed.data_dir) == (3600, tmp_path)
    with pytest.raises(ConfigError, match="BINDER_PER_REPO_QUOTA"):
        config.with_settings(per_repo_quota=-1)
