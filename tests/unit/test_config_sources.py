"""Where BinderConfig's values come from (arguments, env, secret files, YAML, defaults) and how it passes on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr
from traitlets.config.loader import PyFileConfigLoader

from binder_actors.config import EMBEDDED_HUB_CONFIG, BinderConfig, ConfigError, ProviderSettings, config_environment


@pytest.fixture(autouse=True)
def no_binder_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the values a test gives: none from the developer's environment."""
    for name in [name for name in os.environ if name.startswith("BINDER_")]:
        monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("env", "secret_file", "yaml", "expected"),
    [
        ({}, None, None, 8000),  # the default
        ({}, None, "port: 9000\n", 9000),  # YAML beats the default
        ({"BINDER_PORT": "9100"}, None, "port: 9000\n", 9100),  # env beats YAML
        ({}, "9200", "port: 9000\n", 9200),  # a secret file beats YAML
        ({"BINDER_PORT": "9100"}, "9200", None, 9100),  # env beats a secret file
    ],
)
def test_env_beats_secret_files_beat_yaml_beats_defaults(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    secret_file: str | None,
    yaml: str | None,
    expected: int,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if secret_file is not None:
        (tmp_path / "secrets").mkdir()
        write(tmp_path / "secrets" / "port", secret_file)
        monkeypatch.setenv("BINDER_SECRETS_DIR", str(tmp_path / "secrets"))
    if yaml is not None:
        monkeypatch.setenv("BINDER_CONFIG_FILE", str(write(tmp_path / "binder.yaml", yaml)))
    assert BinderConfig().port == expected


def test_arguments_beat_every_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BINDER_PORT", "9100")
    monkeypatch.setenv("BINDER_CONFIG_FILE", str(write(tmp_path / "binder.yaml", "port: 9000\n")))
    assert BinderConfig(port=9300).port == 9300


def test_a_secret_file_supplies_the_hub_token_kept_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A Kubernetes secret mounted as a volume: one file per key, named as the setting.
    write(tmp_path / "hub_api_token", "s3cr3t-from-file\n")
    monkeypatch.setenv("BINDER_SECRETS_DIR", str(tmp_path))
    config = BinderConfig()
    assert config.hub_api_token.get_secret_value() == "s3cr3t-from-file"
    assert "s3cr3t-from-file" not in repr(config) and "s3cr3t-from-file" not in config.model_dump_json()


def test_yaml_sets_nested_provider_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    yaml = "providers:\n  gitlab_url: https://gitlab.example.org\nbanned_specs: ['^gh/evil/']\n"
    monkeypatch.setenv("BINDER_CONFIG_FILE", str(write(tmp_path / "binder.yaml", yaml)))
    config = BinderConfig()
    assert (config.providers.gitlab_url, config.access.banned_specs) == ("https://gitlab.example.org", ["^gh/evil/"])


@pytest.mark.parametrize(
    ("variable", "make", "message"),
    [
        ("BINDER_CONFIG_FILE", lambda tmp: write(tmp / "list.yaml", "- port\n- 9000\n"), "must hold a mapping"),
        ("BINDER_CONFIG_FILE", lambda tmp: write(tmp / "text.yaml", "just words\n"), "must hold a mapping"),
        ("BINDER_CONFIG_FILE", lambda tmp: tmp / "missing.yaml", "missing.yaml is not a file"),
        ("BINDER_SECRETS_DIR", lambda tmp: tmp / "missing", "BINDER_SECRETS_DIR: .*missing is not a folder"),
    ],
)
def test_an_unusable_config_file_or_secrets_dir_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, make, message: str
) -> None:
    monkeypatch.setenv(variable, str(make(tmp_path)))
    with pytest.raises(ConfigError, match=message):
        BinderConfig()


def test_a_bad_value_in_yaml_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BINDER_CONFIG_FILE", str(write(tmp_path / "binder.yaml", "build_memory_limit: 2 gigs\n")))
    with pytest.raises(ConfigError, match="BINDER_BUILD_MEMORY_LIMIT: '2 gigs' is not a Kubernetes quantity"):
        BinderConfig()


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"builder": "docker", "docker_mem_limit": "1G", "docker_cpu_limit": 1.5, "public_url": "http://x.org/d/"},
        {"spec_config": [{"pattern": "^gh/org/", "quota": 3}], "ban_networks": {"10.0.0.0/8": "no"}},
        {"build_tolerations": [{"key": "a", "operator": "Exists"}], "build_node_selector": {"pool": "build"}},
        {"named_servers": True, "ref_cache_ttl": 0.5, "providers": ProviderSettings(gitlab_url="https://gl.org")},
    ],
)
def test_a_child_process_environment_loads_the_same_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: dict
) -> None:
    config = BinderConfig(data_dir=tmp_path, **settings)
    for name, value in config_environment(config).items():
        monkeypatch.setenv(name, value)
    assert BinderConfig() == config


def test_a_child_process_in_another_folder_still_finds_the_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The embedded hub runs in the data folder; `BINDER_CONFIG_FILE=binder.yaml make serve` must still work.
    (tmp_path / "secrets").mkdir()
    write(tmp_path / "secrets" / "hub_api_token", "s3cr3t-from-file")
    write(tmp_path / "binder.yaml", "max_sessions: 7\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINDER_CONFIG_FILE", "binder.yaml")
    monkeypatch.setenv("BINDER_SECRETS_DIR", "secrets")
    exported = config_environment(BinderConfig(data_dir=tmp_path))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    config = BinderConfig()
    assert (config.quotas.max_sessions, config.hub_api_token.get_secret_value()) == (7, "s3cr3t-from-file")


def test_secrets_stay_out_of_a_child_process_environment(tmp_path: Path) -> None:
    config = BinderConfig(
        data_dir=tmp_path,
        hub_api_token=SecretStr("s3cr3t-hub"),
        registry_password=SecretStr("s3cr3t-registry"),
        providers=ProviderSettings(github_access_token=SecretStr("s3cr3t-github")),
    )
    exported = config_environment(config)
    assert not [value for value in exported.values() if "s3cr3t" in value]
    assert "BINDER_HUB_API_TOKEN" not in exported and "BINDER_PROVIDERS__GITHUB_ACCESS_TOKEN" not in exported


def load_hub_config(monkeypatch: pytest.MonkeyPatch, config: BinderConfig, **hub: str):
    """The embedded hub's config as JupyterHub loads it, under the environment start_hub gives it."""
    environment = {
        **config_environment(config),
        "BINDER_HUB_PORT": "8081",
        "BINDER_HUB_API_PORT": "8082",
        "BINDER_HUB_PROXY_API_PORT": "8083",
        "BINDER_HUB_PROXY_COMMAND": "/usr/bin/configurable-http-proxy",
        "BINDER_HUB_API_TOKEN": "s3cr3t-hub",
        **hub,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return PyFileConfigLoader(EMBEDDED_HUB_CONFIG.name, str(EMBEDDED_HUB_CONFIG.parent)).load_config()


@pytest.mark.parametrize(
    ("builder", "hub", "spawner", "settings"),
    [
        ("local", {}, "LocalBinderSpawner", {"sessions_dir": "{data}/sessions", "image_store": "{data}/images"}),
        ("docker", {"BINDER_HUB_IP": "172.30.0.1"}, "DockerBinderSpawner", {"network_name": "binder-actors"}),
        ("kubernetes", {}, "KubeBinderSpawner", {"namespace": "sessions"}),
    ],
)
def test_the_hub_config_picks_the_spawner_of_the_builder_with_binder_config_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, builder: str, hub: dict[str, str], spawner: str, settings: dict
) -> None:
    config = BinderConfig(
        data_dir=tmp_path, builder=builder, kube_namespace="sessions", session_idle_timeout=120, launch_timeout=90
    )
    loaded = load_hub_config(monkeypatch, config, **hub)
    assert loaded.JupyterHub.spawner_class == f"binder_actors.spawners.{spawner}"
    assert loaded.JupyterHub.bind_url == "http://127.0.0.1:8081/"
    assert loaded.JupyterHub.hub_ip == hub.get("BINDER_HUB_IP", "127.0.0.1")
    assert loaded.JupyterHub.services == [{"name": "binder", "api_token": "s3cr3t-hub"}]
    assert (loaded.Spawner.start_timeout, loaded[spawner].shutdown_no_activity_timeout) == (90, 120)
    for name, value in settings.items():
        assert loaded[spawner][name] == value.format(data=tmp_path)
