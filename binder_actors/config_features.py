"""Settings groups of features that are off unless asked for (BINDER_POOL...); registered in config_groups.GROUPS."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from binder_actors import config_checks
from binder_actors.config_groups import SettingsGroup, _flat


class PoolRuleSetting(BaseModel):
    """One BINDER_POOL entry: a spec matching `pattern` (as spec_config's) keeps `size` free servers."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    size: int = Field(ge=0, le=1000)


class PoolSettings(SettingsGroup):
    """Servers started ahead of the clicks (ServerPool): for pinned repositories and the most launched images."""

    flat_prefix: ClassVar[str] = "pool_"

    rules: list[PoolRuleSetting] = Field(
        default_factory=list,
        description='Pinned pools, as JSON: [{"pattern": "^org/course/", "size": 5}]: a spec matching the regex '
        "(case-insensitive, from the start, as spec_config) keeps that many free servers of its image; "
        "the last match wins.",
        json_schema_extra=_flat("pool"),
    )
    max: int = Field(
        0,
        ge=0,
        description="Pooled servers in total at most; above the pinned ones, the images launched most in the last "
        "pool_window seconds get the rest (0: no adaptive pool, pinned sizes uncapped).",
    )
    window: float = Field(3600.0, gt=0, description="Seconds of launches the adaptive pool counts.")

    @field_validator("rules")
    @classmethod
    def _patterns(cls, value: list[PoolRuleSetting]) -> list[PoolRuleSetting]:
        config_checks.patterns(rule.pattern for rule in value)
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.max or any(rule.size for rule in self.rules))
