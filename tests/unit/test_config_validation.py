"""BinderConfig refuses a bad value when it loads, naming the setting as its env var and what is wrong."""

from __future__ import annotations

import os
from typing import Any

import pytest

from binder_actors.config import BinderConfig, ConfigError
from binder_actors.config_groups import FLAT_NAMES, GROUPS


@pytest.fixture(autouse=True)
def no_binder_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the values a test gives: none from the developer's environment."""
    for name in [name for name in os.environ if name.startswith("BINDER_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("BINDER_BUILD_MEMORY_LIMIT", "2 gigs", "BINDER_BUILD_MEMORY_LIMIT: '2 gigs' is not a Kubernetes quantity"),
        ("BINDER_BUILD_MEMORY_REQUEST", "lots", "BINDER_BUILD_MEMORY_REQUEST: 'lots' is not a Kubernetes quantity"),
        ("BINDER_BUILD_MEMORY_LIMIT", "-1Gi", "BINDER_BUILD_MEMORY_LIMIT: '-1Gi' is not a positive amount"),
        ("BINDER_BUILD_TOLERATIONS", '[{"key": "a", "effects": "NoSchedule"}]', "BINDER_BUILD_TOLERATIONS: unknown"),
        ("BINDER_BUILD_TOLERATIONS", '[{"operator": "Maybe"}]', "BINDER_BUILD_TOLERATIONS: toleration operator"),
        ("BINDER_BUILD_TOLERATIONS", '[{"effect": "NoRun"}]', "BINDER_BUILD_TOLERATIONS: toleration effect 'NoRun'"),
        ("BINDER_BUILD_TOLERATIONS", '[{"operator": "Exists", "value": "x"}]', "Exists takes no value"),
        ("BINDER_BUILD_TOLERATIONS", '[{"tolerationSeconds": "1h"}]', "tolerationSeconds must be a whole number"),
        ("BINDER_BUILD_DOCKER_SOCKET", "containerd", "BINDER_BUILD_DOCKER_SOCKET: Input should be 'host', 'dind'"),
        ("BINDER_BUILD_EXTRA_ARGS", "--debug", "BINDER_BUILD_EXTRA_ARGS: not JSON"),
        ("BINDER_BUILD_TOLERATIONS", '{"key": "a"}', "BINDER_BUILD_TOLERATIONS: Input should be a valid list"),
        ("BINDER_BAN_NETWORKS", '["10.0.0.0/33"]', "BINDER_BAN_NETWORKS: '10.0.0.0/33' is not a network"),
        ("BINDER_BAN_NETWORKS", '["nonsense"]', "BINDER_BAN_NETWORKS: 'nonsense' is not a network"),
        ("BINDER_BAN_NETWORKS", '{"bad": "go away"}', "BINDER_BAN_NETWORKS: 'bad' is not a network"),
        ("BINDER_TRUSTED_PROXIES", '["2001:db8::/129"]', "BINDER_TRUSTED_PROXIES: '2001:db8::/129' is not a network"),
        ("BINDER_BANNED_SPECS", '["gh/(org"]', "BINDER_BANNED_SPECS: 'gh/(org' is not a regular expression"),
        ("BINDER_ALLOWED_SPECS", '["*"]', "BINDER_ALLOWED_SPECS: '*' is not a regular expression"),
        ("BINDER_HIGH_QUOTA_SPECS", '["[a-"]', "BINDER_HIGH_QUOTA_SPECS: '[a-' is not a regular expression"),
        ("BINDER_SPEC_CONFIG", '[{"pattern": "(x", "quota": 2}]', "BINDER_SPEC_CONFIG: '(x' is not a regular"),
        ("BINDER_SPEC_CONFIG", '[{"pattern": "x", "quota": -2}]', "BINDER_SPEC_CONFIG[0].quota: Input should be"),
        ("BINDER_REGISTRY_URL", "registry.example.org", "BINDER_REGISTRY_URL: not an http(s) URL"),
        ("BINDER_HUB_URL", "ftp://hub.example.org", "BINDER_HUB_URL: not an http(s) URL"),
        ("BINDER_HUB_URL", "https://binder:t0ken@hub.example.org", "goes in BINDER_HUB_API_TOKEN"),
        ("BINDER_PUBLIC_URL", "binder.example.org", "BINDER_PUBLIC_URL: not an http(s) URL"),
        ("BINDER_BASE_URL", "https://binder.example.org/binder/", "BINDER_BASE_URL: 'https://binder.example.org"),
        ("BINDER_BASE_URL", "/binder/?x=1", "BINDER_BASE_URL: '/binder/?x=1' is not a URL path"),
        ("BINDER_DOCKER_MEM_LIMIT", "2GB", "BINDER_DOCKER_MEM_LIMIT: '2GB' is not a memory size"),
        ("BINDER_DOCKER_MEM_LIMIT", "2147483648", "BINDER_DOCKER_MEM_LIMIT: '2147483648' is not a memory size"),
        ("BINDER_DOCKER_CPU_LIMIT", "-1", "BINDER_DOCKER_CPU_LIMIT: Input should be greater than or equal to 0"),
        ("BINDER_PORT", "0", "BINDER_PORT: Input should be greater than or equal to 1, not 0"),
        ("BINDER_PORT", "70000", "BINDER_PORT: Input should be less than or equal to 65535, not 70000"),
        ("BINDER_PORT", "http", "BINDER_PORT: Input should be a valid integer"),
        ("BINDER_HUB_PORT", "-1", "BINDER_HUB_PORT: Input should be greater than or equal to 0, not -1"),
        ("BINDER_CULL_TIMEOUT", "0", "BINDER_CULL_TIMEOUT: Input should be greater than 0, not 0"),
        ("BINDER_CULL_EVERY", "-60", "BINDER_CULL_EVERY: Input should be greater than 0"),
        ("BINDER_CULL_CONCURRENCY", "0", "BINDER_CULL_CONCURRENCY: Input should be greater than or equal to 1"),
        ("BINDER_LAUNCH_TIMEOUT", "0", "BINDER_LAUNCH_TIMEOUT: Input should be greater than 0"),
        ("BINDER_BUILD_TIMEOUT", "-5", "BINDER_BUILD_TIMEOUT: Input should be greater than 0"),
        ("BINDER_BUILD_MAX_AGE", "0", "BINDER_BUILD_MAX_AGE: Input should be greater than 0"),
        ("BINDER_BUILD_TOKEN_EXPIRES", "0", "BINDER_BUILD_TOKEN_EXPIRES: Input should be greater than 0"),
        ("BINDER_UPSTREAM_TIMEOUT", "0", "BINDER_UPSTREAM_TIMEOUT: Input should be greater than 0"),
        ("BINDER_MAX_CONCURRENT_BUILDS", "0", "BINDER_MAX_CONCURRENT_BUILDS: Input should be greater than or equal"),
        ("BINDER_MAX_CONCURRENT_SPAWNS", "0", "BINDER_MAX_CONCURRENT_SPAWNS: Input should be greater than or equal"),
        ("BINDER_RAY_NUM_CPUS", "0", "BINDER_RAY_NUM_CPUS: Input should be greater than or equal to 1"),
        ("BINDER_MAX_SESSIONS", "-1", "BINDER_MAX_SESSIONS: Input should be greater than or equal to 0"),
        ("BINDER_PER_REPO_QUOTA", "-1", "BINDER_PER_REPO_QUOTA: Input should be greater than or equal to 0"),
        ("BINDER_REF_CACHE_TTL", "-1", "BINDER_REF_CACHE_TTL: Input should be greater than or equal to 0"),
        ("BINDER_IMAGE_CACHE_MISS_TTL", "-1", "BINDER_IMAGE_CACHE_MISS_TTL: Input should be greater than or equal"),
        ("BINDER_IMAGE_STORE_MAX_GB", "-1", "BINDER_IMAGE_STORE_MAX_GB: Input should be greater than or equal to 0"),
        ("BINDER_IMAGE_STORE_MAX_GB", "20GB", "BINDER_IMAGE_STORE_MAX_GB: Input should be a valid number"),
        ("BINDER_SESSION_IDLE_TIMEOUT", "-1", "BINDER_SESSION_IDLE_TIMEOUT: Input should be greater than or equal"),
        ("BINDER_KERNEL_IDLE_TIMEOUT", "-1", "BINDER_KERNEL_IDLE_TIMEOUT: Input should be greater than or equal"),
        ("BINDER_CULL_MAX_AGE", "-1", "BINDER_CULL_MAX_AGE: Input should be greater than or equal to 0"),
        ("BINDER_RATE_LIMIT", "-1", "BINDER_RATE_LIMIT: Input should be greater than or equal to 0"),
        ("BINDER_BUILDER", "podman", "BINDER_BUILDER: Input should be 'local', 'kubernetes' or 'docker'"),
        ("BINDER_CRAN_URL", "cran.example.org", "BINDER_CRAN_URL: not an http(s) URL"),
        ("BINDER_CRAN_URL", "", "BINDER_CRAN_URL: empty; write a CRAN repository URL"),
        ("BINDER_DOCKER_USE_REPO2DOCKER", "true", "BINDER_DOCKER_USE_REPO2DOCKER: removed: the docker builder's"),
        ("BINDER_PROVIDERS__HEAD_FALLBACK", "perhaps", "BINDER_PROVIDERS__HEAD_FALLBACK: Input should be a valid"),
    ],
)
def test_a_bad_value_fails_at_load_naming_its_env_var(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as refused:
        BinderConfig()
    assert message in str(refused.value)


@pytest.mark.parametrize("value", ["1GB", "1gi", "-1Gi", "0", "Gi", "1.2.3", "one", "1Gii"])
def test_malformed_build_memory_is_refused_at_load(value: str) -> None:
    """Moved from the build pod (kube_pod.py), which now takes the checked value and only counts its bytes."""
    with pytest.raises(ConfigError, match="BINDER_BUILD_MEMORY_LIMIT: .* is not a"):
        BinderConfig(build_memory_limit=value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"registry": "oci"}, "BINDER_REGISTRY_URL is empty; BINDER_REGISTRY=oci needs one"),
        (
            {"registry": "oci", "registry_url": "http://127.0.0.1:5000", "image_store_max_gb": 50},
            "BINDER_IMAGE_STORE_MAX_GB bounds the local store and the Docker Engine's images",
        ),
        (
            {"build_memory_request": "2Gi", "build_memory_limit": "1Gi"},
            "BINDER_BUILD_MEMORY_REQUEST 2Gi is more than BINDER_BUILD_MEMORY_LIMIT 1Gi",
        ),
    ],
)
def test_settings_that_contradict_each_other_fail_naming_both(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BinderConfig(**settings)


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDER_PORT", "0")
    monkeypatch.setenv("BINDER_DOCKER_MEM_LIMIT", "lots")
    with pytest.raises(ConfigError) as refused:
        BinderConfig()
    assert "BINDER_PORT" in str(refused.value) and "BINDER_DOCKER_MEM_LIMIT" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    ["https://user:s3cr3t@registry.example.org", "s3cr3t@registry.example.org", "//user:s3cr3t@registry"],
)
def test_a_refused_registry_url_is_not_repeated(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        BinderConfig(registry="oci", registry_url=url)
    assert "s3cr3t" not in str(refused.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"build_memory_request": "512Mi", "build_memory_limit": "1.5Gi"},
        {"build_memory_limit": "1e9"},
        {"build_tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]},
        {"build_tolerations": [{"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30}]},
        {"ban_networks": {"192.0.2.0/24": "go away", "2001:db8::/32": "v6 too"}},
        {"ban_networks": ["10.1.2.3/8"]},  # host bits set: access.py accepts it, so the config does
        {"trusted_proxies": ["127.0.0.1/32", "::1/128"]},
        {"banned_specs": ["^gh/evil/.*"], "allowed_specs": ["gh/"], "high_quota_specs": ["^gh/org/"]},
        {"spec_config": [{"pattern": "^gh/org%2F", "quota": 0}]},
        {"registry": "oci", "registry_url": "http://127.0.0.1:5000"},
        {"hub_url": "https://hub.example.org/", "public_url": "https://binder.example.org/binder/"},
        {"base_url": "/binder/"},
        {"base_url": "binder"},
        {"docker_mem_limit": "1.5G", "docker_cpu_limit": 0.5},
        {"port": 65535, "hub_port": 0, "max_sessions": 0, "per_repo_quota": 0, "cull_max_age": 0},
        {"session_idle_timeout": 0, "kernel_idle_timeout": 0, "image_cache_miss_ttl": 0, "ref_cache_ttl": 0},
    ],
)
def test_good_values_load(settings: dict[str, Any]) -> None:
    config = BinderConfig(**settings)
    set_names = set(config.model_fields_set)
    for group in GROUPS:  # a group's settings, by the flat names given
        set_names |= {FLAT_NAMES[(group, name)] for name in getattr(config, group).model_fields_set}
    assert set(settings) <= set_names


def test_serve_with_a_bad_setting_says_which_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from binder_actors.cli import main

    monkeypatch.setenv("BINDER_PORT", "70000")
    assert main(["serve"]) == 2
    error = capsys.readouterr().err
    assert "BINDER_PORT" in error and "65535" in error and "Traceback" not in error


def test_the_removed_repo2docker_mode_fails_at_load_by_any_name() -> None:
    with pytest.raises(ConfigError, match="docker_use_repo2docker: removed: .*repo2docker needs buildx"):
        BinderConfig(docker_use_repo2docker=False)
