"""Settings groups of later features, registered beside config_groups' own: the web pages' look and words
(BinderHub's page settings), so an operator can make the service theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from binder_actors import config_checks
from binder_actors.config_groups import BINDERHUB_PROVIDER_CLASSES, SettingsGroup, register_group

PROVIDER_PREFIXES = ("gh", "gl", "gist", "git", "zenodo", "figshare", "hydroshare", "dataverse", "ckan", "swh")


def _flat(name: str) -> Any:
    return {"flat": name}


class PageSettings(SettingsGroup):
    """What the web pages say and offer. Each flat name is BinderHub's traitlet of the same name."""

    flat_prefix: ClassVar[str] = "page_"

    banner_message: str = Field(
        "",
        description="HTML shown in a banner at the top of every page (BinderHub's banner_message); sanitised: "
        "links and formatting stay, scripts and event handlers go.",
        json_schema_extra=_flat("banner_message"),
    )
    about_message: str = Field(
        "",
        description="HTML of the /about page's own paragraph (BinderHub's about_message); sanitised as the banner.",
        json_schema_extra=_flat("about_message"),
    )
    extra_header: str = Field(
        "",
        description="HTML put as it is at the end of every page's <head> (styles, meta tags, analytics loaders); "
        "trusted: not sanitised.",
        json_schema_extra=_flat("extra_header"),
    )
    extra_footer_scripts: dict[str, str] = Field(
        default_factory=dict,
        description="JavaScript run at the end of every page, JSON {name: code} (BinderHub's extra_footer_scripts): "
        "each value goes in its own <script>, in the order of the names; trusted: not sanitised.",
        json_schema_extra=_flat("extra_footer_scripts"),
    )
    template_path: str = Field(
        "",
        description="Folder of Jinja2 templates found before the built-in ones, by the same names (page.html, "
        "index.html, launch.html, error.html, about.html) (BinderHub's template_path); empty: none.",
        json_schema_extra=_flat("template_path"),
    )
    extra_static_path: str = Field(
        "",
        description="Folder whose files are served under extra_static_url_prefix (BinderHub's extra_static_path); "
        "empty: none.",
        json_schema_extra=_flat("extra_static_path"),
    )
    extra_static_url_prefix: str = Field(
        "extra_static/",
        description="Path, below the base URL, that extra_static_path's files are served under "
        "(BinderHub's extra_static_url_prefix).",
        json_schema_extra=_flat("extra_static_url_prefix"),
    )
    badge_base_url: str = Field(
        "",
        description="URL the landing page's shared link and badge snippets point at, e.g. https://mybinder.org/ "
        "(BinderHub's badge_base_url); empty: this service's own URL.",
        json_schema_extra=_flat("badge_base_url"),
    )
    repo_providers: list[str] = Field(
        default_factory=list,
        description="Providers this Binder offers and launches, JSON [gh, gl, ...] (our prefixes or BinderHub's "
        "class names, as BinderHub's repo_providers); others are refused; empty: all.",
        json_schema_extra=_flat("repo_providers"),
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


register_group("pages", PageSettings)
