"""Settings groups of optional features (each self-contained), registered in config_groups.GROUPS."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from binder_actors import config_checks
from binder_actors.settings_group import SettingsGroup


class AuthSettings(SettingsGroup):
    """Authenticated mode (BinderHub's auth_enabled): hub users log in, each launch is a named server of theirs."""

    flat_prefix: ClassVar[str] = "auth_"

    enabled: bool = Field(
        False,
        description="Require a logged-in hub user for the landing page, /v2 and /build; each launch starts a named "
        "server of that user, who is never culled (only the server is).",
    )
    shared_password: SecretStr = Field(
        SecretStr(""),
        description="Embedded hub only: the password every user logs in with (JupyterHub's SharedPasswordAuthenticator,"
        " at least 8 characters); an external hub brings its own authenticator.",
    )
    allowed_users: list[str] = Field(
        default_factory=list, description="Embedded hub only: the users who may log in, as JSON; empty: anyone."
    )
    named_server_limit_per_user: int = Field(
        0,
        ge=0,
        description="Binder servers one user may have at once (JupyterHub's named_server_limit_per_user; 0: none).",
    )
    oauth_client_id: str = Field(
        "service-binder", description="OAuth client id of binder-actors in the hub (JupyterHub wants service-...)."
    )
    cookie_max_age: int = Field(
        86400, gt=0, description="Seconds the login cookie of binder-actors is valid; the hub's token is checked too."
    )

    @field_validator("oauth_client_id")
    @classmethod
    def _service_prefix(cls, value: str) -> str:
        if not value.startswith("service-"):
            raise ValueError(f"{value!r} must start with service- (JupyterHub's rule for a service's OAuth client)")
        return value

    @field_validator("shared_password")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value()) < 8:
            raise ValueError("the shared password must have at least 8 characters (JupyterHub's minimum)")
        return value


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
