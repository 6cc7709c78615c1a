"""The base of every settings group: a group's fields also load by their flat names (docker_network).

A module of its own so that config_groups and config_features both build on it without importing each other.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


def flat_name(name: str) -> Any:
    """Marks a group field whose flat name is not the group's prefix + its name (json_schema_extra)."""
    return {"flat": name}


class SettingsGroup(BaseModel):
    """Settings that belong together; each was a flat setting `flat_prefix + name` (or its `flat` mark).

    The flat names (BINDER_DOCKER_NETWORK, YAML docker_network, BinderConfig(docker_network=...)) are the
    ones users write; `FLAT_SETTINGS` is derived from these models, so no list of names is kept by hand.
    """

    model_config = ConfigDict(extra="forbid")
    flat_prefix: ClassVar[str] = ""

    @classmethod
    def flat_names(cls) -> dict[str, str]:
        """{field: its flat setting name}."""
        names = {}
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            names[name] = str(extra.get("flat", cls.flat_prefix + name))
        return names
