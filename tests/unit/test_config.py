from pathlib import Path

import pytest

from binder_actors.config import BinderConfig


def test_defaults_match_the_documented_ones(monkeypatch):
    for name in ("BINDER_PORT", "BINDER_DATA_DIR", "BINDER_CULL_TIMEOUT", "BINDER_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    config = BinderConfig()
    assert config.port == 8000
    assert config.culling.timeout == 600
    assert config.data_dir == Path.home() / ".local" / "share" / "binder-actors"
    assert config.python_version == "3.10"


def test_env_vars_and_yaml_file_set_values_env_winning(monkeypatch, tmp_path):
    settings = tmp_path / "binder.yaml"
    settings.write_text("port: 9000\ncull_every: 5\n")
    monkeypatch.setenv("BINDER_CONFIG_FILE", str(settings))
    monkeypatch.setenv("BINDER_PORT", "9100")
    config = BinderConfig()
    assert (config.port, config.culling.every) == (9100, 5)


def test_hub_token_never_shows_in_the_config_repr(monkeypatch):
    monkeypatch.setenv("BINDER_HUB_API_TOKEN", "s3cr3t-token")
    config = BinderConfig()
    assert "s3cr3t-token" not in repr(config) and "s3cr3t-token" not in config.model_dump_json()
    assert config.hub_api_token.get_secret_value() == "s3cr3t-token"


def test_unknown_settings_are_refused(monkeypatch, tmp_path):
    settings = tmp_path / "binder.yaml"
    settings.write_text("prot: 9000\n")
    monkeypatch.setenv("BINDER_CONFIG_FILE", str(settings))
    with pytest.raises(ValueError, match="prot"):
        BinderConfig()
