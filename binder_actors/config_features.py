"""Settings groups of features added after the first groups (config_groups.py); registered in its GROUPS."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from binder_actors import config_checks
from binder_actors.config_groups import SettingsGroup


class CranSettings(SettingsGroup):
    """Where the docker builder's R repositories install their R packages from (install.R, DESCRIPTION)."""

    flat_prefix: ClassVar[str] = "cran_"

    url: str = Field(
        "https://packagemanager.posit.co/cran/__linux__/bookworm/{date}",
        description="CRAN repository of an R repository's install.R and DESCRIPTION; {date} becomes the snapshot "
        "date of its runtime.txt (r-YYYY-MM-DD). The default is Posit's dated snapshots (as repo2docker uses), "
        "with binary packages for Debian bookworm (the base image's distribution).",
    )

    @field_validator("url")
    @classmethod
    def _cran_url(cls, value: str) -> str:
        if not value:
            raise ValueError("empty; write a CRAN repository URL, e.g. https://cran.example.org/{date}")
        return config_checks.http_url(
            value,
            "https://packagemanager.posit.co/cran/__linux__/bookworm/{date}",
            "a mirror needing credentials is not supported",
        )
