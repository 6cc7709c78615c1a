"""Where BinderConfig's values come from, beyond pydantic-settings' own sources: the flat names of group
settings (BINDER_DOCKER_NETWORK, a secret file docker_network), the YAML file, and the folding of flat
names into their groups so that each source's precedence holds whichever form it used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from types import UnionType
from typing import Any, get_origin

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    YamlConfigSettingsSource,
)

from binder_actors.config_checks import ConfigError
from binder_actors.config_groups import FLAT_SETTINGS, GROUPS, fold_flat

__all__ = [
    "FoldedSource",
    "GroupEnvSource",
    "GroupSecretsSource",
    "YamlFileSource",
    "flat_env_source",
    "flat_secrets_source",
]


class YamlFileSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, refusing a file that is not a mapping of setting: value."""

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        content = super()._read_file(file_path)
        if not isinstance(content, dict):
            raise ConfigError(f"BINDER_CONFIG_FILE: {file_path} must hold a mapping of setting: value")
        return content


# Settings that no longer exist, and why: set, they fail the load instead of being silently ignored.
REMOVED_SETTINGS = {
    "docker_use_repo2docker": "removed: the docker builder's repo2docker mode could not be built or tested here "
    "(repo2docker needs buildx and base images pulled from a registry) and started images without "
    "jupyterhub-singleuser; unset it. The docker builder builds R, Dockerfile, conda and Python repositories "
    "itself, and Kubernetes build pods run repo2docker",
}


class FlatSettingsSource(PydanticBaseSettingsSource):
    """Group settings read by their flat names, from env vars (BINDER_DOCKER_NETWORK) or secret files
    (docker_network), as pydantic-settings reads a top-level one: lists and mappings are JSON.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], read: Callable[[str], str | None], where: Callable[[str], str]
    ) -> None:
        super().__init__(settings_cls)
        self._read = read
        self._where = where  # where a flat setting was read, for an error: its env var or its file

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the flat names itself

    def __call__(self) -> dict[str, Any]:
        for removed in REMOVED_SETTINGS:
            if self._read(removed) is not None:
                raise ConfigError(f"{self._where(removed)}: {REMOVED_SETTINGS[removed]}")
        values: dict[str, dict[str, Any]] = {}
        for flat, (group, name) in FLAT_SETTINGS.items():
            raw = self._read(flat)
            if raw is None:
                continue
            field = GROUPS[group].model_fields[name]
            value: Any = raw
            if get_origin(field.annotation) in (list, dict, UnionType):  # lists, mappings, list | dict
                try:
                    value = json.loads(raw)
                except ValueError:
                    raise ConfigError(
                        f"{self._where(flat)}: not JSON; lists and mappings are written as JSON"
                    ) from None
            values.setdefault(group, {})[name] = value
        return values


def flat_env_source(settings_cls: type[BaseSettings]) -> FlatSettingsSource:
    """BINDER_<FLAT NAME> env vars (case-insensitive, as pydantic-settings reads env vars)."""
    environ = {name.upper(): value for name, value in os.environ.items() if name.upper().startswith("BINDER_")}
    return FlatSettingsSource(
        settings_cls, lambda flat: environ.get(f"BINDER_{flat.upper()}"), lambda flat: f"BINDER_{flat.upper()}"
    )


def flat_secrets_source(settings_cls: type[BaseSettings], folder: Path) -> FlatSettingsSource:
    """One file per setting in `folder`, named by its flat name (registry_password)."""

    def read(flat: str) -> str | None:
        path = folder / flat
        return path.read_text().strip() if path.is_file() else None

    return FlatSettingsSource(settings_cls, read, lambda flat: str(folder / flat))


class _FlatKindLeftAlone:
    """An env or secrets source leaving BINDER_REGISTRY=oci (the flat registry kind, read by the flat source)
    alone instead of failing to read it as the JSON of the whole registry group.
    """

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        if field_name in GROUPS and isinstance(value, str) and not value.lstrip().startswith("{"):
            value = None  # only BINDER_REGISTRY__URL-style variables then make up the group
        return super().prepare_field_value(field_name, field, value, value_is_complex)  # type: ignore[misc]


class GroupEnvSource(_FlatKindLeftAlone, EnvSettingsSource):
    """pydantic-settings' env source (BINDER_PORT, BINDER_DOCKER__NETWORK), flat group names left to the flat one."""


class GroupSecretsSource(_FlatKindLeftAlone, SecretsSettingsSource):
    """pydantic-settings' secret files (hub_api_token), flat group names left to the flat one."""


class FoldedSource(PydanticBaseSettingsSource):
    """Another source (arguments, the YAML file) with its flat settings moved into their groups, so a
    source's precedence holds whichever form it used.
    """

    def __init__(self, source: PydanticBaseSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self._source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ asks the wrapped source

    def __call__(self) -> dict[str, Any]:
        return fold_flat(self._source())
