"""/api/repoproviders: each provider's display config, the shape BinderHub's landing page reads (pure)."""

from __future__ import annotations

import re
from typing import Any

from binder_actors.config import ProviderSettings
from binder_actors.config_features import PageSettings
from binder_actors.providers import PROVIDERS, RepoProvider

# What the landing page shows in the repository field, and whether that part is url-escaped in the spec.
PLACEHOLDERS: dict[str, tuple[str, bool]] = {
    "gh": ("binder-examples/requirements or https://github.com/binder-examples/requirements", False),
    "gist": ("username/gistid or https://gist.github.com/username/gistid", False),
    "gl": ("group/project or https://gitlab.com/group/project", True),
    "git": ("https://git.example.org/repository.git", True),
    "zenodo": ("10.5281/zenodo.3242074", False),
    "figshare": ("10.6084/m9.figshare.9782777.v1", False),
    "hydroshare": ("8f7c2f0341ef4180b0dd4b1a6c5cc8d3 or a HydroShare resource URL", False),
    "dataverse": ("10.7910/DVN/TJCLKP", False),
    "ckan": ("https://demo.ckan.org/dataset/sample-dataset-1", False),
    "swh": ("swh:1:dir:<40 hex digits>", False),
}


def detect_regex(prefix: str, settings: ProviderSettings) -> str | None:
    """A JavaScript regex taking a pasted web URL apart into repo, ref and filepath; None if none applies.

    The host is the configured one (GitHub Enterprise, a self-hosted GitLab), so pasted links match.
    """
    if prefix == "gh":
        host = re.escape(settings.github_url.rstrip("/"))
        return rf"^{host}/(?<repo>[^/]+/[^/]+?)(\.git)?(/(tree|blob)/(?<ref>[^/]+)(/(?<filepath>.+))?)?/?$"
    if prefix == "gl":
        host = re.escape(settings.gitlab_url.rstrip("/"))
        return rf"^{host}/(?<repo>[^/]+(/[^/-][^/]*)+?)(/-/(tree|blob)/(?<ref>[^/]+)(/(?<filepath>.+))?)?/?$"
    return None


def display_config(provider: RepoProvider, settings: ProviderSettings) -> dict[str, Any]:
    labels = provider.labels
    placeholder, url_encode = PLACEHOLDERS.get(provider.prefix, ("", False))
    config: dict[str, Any] = {
        "id": provider.prefix,
        "displayName": provider.display_name,
        "repo": {"label": labels.text, "placeholder": f"example: {placeholder}", "urlEncode": url_encode},
        "ref": {"enabled": not labels.ref_prop_disabled, "default": "HEAD", "label": labels.tag_text},
        "labels": labels.model_dump(),  # the older BinderHub fields (text, tag_text, *_prop_disabled)
    }
    regex = detect_regex(provider.prefix, settings)
    if regex:
        config["detect"] = {"regex": regex}
    return config


def repoproviders(settings: ProviderSettings, pages: PageSettings | None = None) -> list[dict[str, Any]]:
    """The display config of every provider `pages` offers (all by default), in the order of PROVIDERS."""
    offered = [provider for provider in PROVIDERS.values() if pages is None or pages.offers(provider.prefix)]
    return [display_config(provider, settings) for provider in offered]
