"""Settings groups of optional features (each self-contained), registered in config_groups.GROUPS."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from binder_actors import config_checks
from binder_actors.config_checks import BINDERHUB_PROVIDER_CLASSES
from binder_actors.settings_group import SettingsGroup
from binder_actors.settings_group import flat_name as _flat


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


PROVIDER_PREFIXES = ("gh", "gl", "gist", "git", "zenodo", "figshare", "hydroshare", "dataverse", "ckan", "swh")


class PageSettings(SettingsGroup):
    """What the web pages say and offer. Each flat name is BinderHub's traitlet of the same name."""

    flat_prefix: ClassVar[str] = ""  # BinderHub's traitlet names, unprefixed

    banner_message: str = Field(
        "",
        description="HTML shown in a banner at the top of every page (BinderHub's banner_message); sanitised: "
        "links and formatting stay, scripts and event handlers go.",
    )
    about_message: str = Field(
        "",
        description="HTML of the /about page's own paragraph (BinderHub's about_message); sanitised as the banner.",
    )
    extra_header: str = Field(
        "",
        description="HTML put as it is at the end of every page's <head> (styles, meta tags, analytics loaders); "
        "trusted: not sanitised.",
    )
    extra_footer_scripts: dict[str, str] = Field(
        default_factory=dict,
        description="JavaScript run at the end of every page, JSON {name: code} (BinderHub's extra_footer_scripts): "
        "each value goes in its own <script>, in the order of the names; trusted: not sanitised.",
    )
    template_path: str = Field(
        "",
        description="Folder of Jinja2 templates found before the built-in ones, by the same names (page.html, "
        "index.html, launch.html, error.html, about.html) (BinderHub's template_path); empty: none.",
    )
    extra_static_path: str = Field(
        "",
        description="Folder whose files are served under extra_static_url_prefix (BinderHub's extra_static_path); "
        "empty: none.",
    )
    extra_static_url_prefix: str = Field(
        "extra_static/",
        description="Path, below the base URL, that extra_static_path's files are served under "
        "(BinderHub's extra_static_url_prefix).",
    )
    badge_base_url: str = Field(
        "",
        description="URL the landing page's shared link and badge snippets point at, e.g. https://mybinder.org/ "
        "(BinderHub's badge_base_url); empty: this service's own URL.",
    )
    repo_providers: list[str] = Field(
        default_factory=list,
        description="Providers this Binder offers and launches, JSON [gh, gl, ...] (our prefixes or BinderHub's "
        "class names, as BinderHub's repo_providers); others are refused; empty: all.",
    )

    @field_validator("template_path", "extra_static_path")
    @classmethod
    def _folder(cls, value: str) -> str:
        if value and not Path(value).is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @field_validator("extra_static_url_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        inner = config_checks.url_path(value).strip("/")
        if not inner:
            raise ValueError("the prefix cannot be empty: write it as extra_static/")
        return inner + "/"

    @field_validator("badge_base_url")
    @classmethod
    def _badge_base(cls, value: str) -> str:
        value = config_checks.http_url(value, "https://mybinder.org/", "badges are public links")
        return value if not value or value.endswith("/") else value + "/"

    @field_validator("repo_providers")
    @classmethod
    def _providers(cls, value: list[str]) -> list[str]:
        prefixes = []
        for name in value:
            prefix = BINDERHUB_PROVIDER_CLASSES.get(name, name)
            if prefix not in PROVIDER_PREFIXES:
                known = ", ".join([*PROVIDER_PREFIXES, *BINDERHUB_PROVIDER_CLASSES])
                raise ValueError(f"{name!r} is not a provider; use one of {known}")
            if prefix not in prefixes:
                prefixes.append(prefix)
        return prefixes

    def offers(self, prefix: str) -> bool:
        """Whether the provider of `prefix` is enabled (all are when repo_providers is empty)."""
        return not self.repo_providers or prefix in self.repo_providers
