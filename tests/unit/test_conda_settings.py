"""The conda settings load by their documented names, a bad channel alias is refused naming its variable,
and channel names are read under the alias (the mirror case)."""

from __future__ import annotations

import os

import pytest

from binder_actors.builders.conda import channels_of
from binder_actors.builders.detect import CondaEnvironment
from binder_actors.config import BinderConfig, ConfigError


@pytest.fixture(autouse=True)
def no_binder_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("BINDER_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("BINDER_CONDA_CHANNELS", '["bioconda", "conda-forge"]', "channels", ["bioconda", "conda-forge"]),
        ("BINDER_CONDA_CHANNEL_ALIAS", "http://127.0.0.1:8081/", "channel_alias", "http://127.0.0.1:8081/"),
        ("BINDER_CONDA_SOLVE_TIMEOUT", "30", "solve_timeout", 30),
    ],
)
def test_conda_settings_load_from_their_env_vars(monkeypatch, variable, value, field, expected):
    monkeypatch.setenv(variable, value)
    assert getattr(BinderConfig().conda, field) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [("mirror.example.org", r"not an http\(s\) URL"), ("https://user:pw@mirror.example.org/", "user or password")],
)
def test_a_bad_channel_alias_is_refused_naming_its_variable(monkeypatch, value, reason):
    monkeypatch.setenv("BINDER_CONDA_CHANNEL_ALIAS", value)
    with pytest.raises(ConfigError, match=f"BINDER_CONDA_CHANNEL_ALIAS.*{reason}"):
        BinderConfig()


@pytest.mark.parametrize(
    ("file_channels", "alias", "urls"),
    [
        ((), "https://conda.anaconda.org/", ["https://conda.anaconda.org/conda-forge/"]),
        ((), "http://127.0.0.1:8081", ["http://127.0.0.1:8081/conda-forge/"]),
        (
            ("bioconda", "https://other.example.org/ch"),
            "http://m/",
            ["http://m/bioconda/", "https://other.example.org/ch/"],
        ),
    ],
)
def test_channel_names_are_read_under_the_alias(file_channels, alias, urls):
    settings = BinderConfig(conda_channel_alias=alias).conda
    environment = CondaEnvironment("environment.yml", file_channels, ("python 3.10.*",))
    assert [str(channel.base_url) for channel in channels_of(environment, settings)] == urls
