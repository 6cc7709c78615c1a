"""Pure: the providers the landing page offers, as its script reads them: the enabled ones, named after the
hosts this Binder is configured for (GitHub Enterprise, a self-hosted GitLab), not always github.com.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from binder_actors.config import ProviderSettings
from binder_actors.config_features import PROVIDER_PREFIXES, PageSettings

# Providers whose spec names a repository on one configured web host: (its setting, the public host,
# the name shown for the public host, the name shown beside any other host, what the repository field asks).
HOSTED = {
    "gh": ("github_url", "github.com", "GitHub", "GitHub", "repository name"),
    "gl": ("gitlab_url", "gitlab.com", "GitLab.com", "GitLab", "repository"),
    "gist": ("gist_url", "gist.github.com", "Gist", "Gist", "ID (username/gistId)"),
}
EXAMPLES = {"gh": "org/repo", "gl": "group/project", "gist": "username/0123abcd"}
# How each other provider's spec is written in a Binder link (BinderHub's rules).
RECORDS: dict[str, dict[str, Any]] = {
    "git": {
        "name": "Git repository",
        "label": "Arbitrary git repository URL",
        "placeholder": "https://git.example.org/repo.git",
        "ref": True,
    },
    "zenodo": {"name": "Zenodo DOI", "label": "Zenodo DOI", "placeholder": "10.5281/zenodo.3242074", "ref": False},
    "figshare": {
        "name": "Figshare DOI",
        "label": "Figshare DOI",
        "placeholder": "10.6084/m9.figshare.9782777.v1",
        "ref": False,
    },
    "hydroshare": {
        "name": "HydroShare resource",
        "label": "HydroShare resource id or URL",
        "placeholder": "https://www.hydroshare.org/resource/<id>",
        "ref": False,
    },
    "dataverse": {"name": "Dataverse DOI", "label": "Dataverse DOI", "placeholder": "10.7910/DVN/TJCLKP", "ref": False},
    "ckan": {
        "name": "CKAN dataset",
        "label": "CKAN dataset URL",
        "placeholder": "https://demo.ckan.org/dataset/sample-dataset-1",
        "ref": False,
    },
    "swh": {
        "name": "Software Heritage",
        "label": "SWHID",
        "placeholder": "swh:1:dir:<40 hexadecimal characters>",
        "ref": False,
    },
}


def web_host(url: str) -> str:
    """`github.example.org/prefix` of `https://github.example.org/prefix/`: what a pasted link starts with."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path).rstrip("/")


def hosted_provider(prefix: str, providers: ProviderSettings) -> dict[str, Any]:
    setting, public_host, public_name, family, asked = HOSTED[prefix]
    host = web_host(getattr(providers, setting))
    name = public_name if host == public_host else f"{family} ({host})"
    example = EXAMPLES[prefix]
    offered = {"id": prefix, "name": name, "label": f"{name} {asked} or URL", "ref": True, "host": host}
    if prefix == "gist":
        return {**offered, "placeholder": example, "refLabel": "Git commit SHA"}
    return {**offered, "placeholder": f"{example} or https://{host}/{example}"}


def landing_providers(pages: PageSettings, providers: ProviderSettings) -> list[dict[str, Any]]:
    """The landing page's provider choices, in BinderHub's order, only those `pages.repo_providers` enables."""
    offered = []
    for prefix in PROVIDER_PREFIXES:
        if not pages.offers(prefix):
            continue
        offered.append(hosted_provider(prefix, providers) if prefix in HOSTED else {"id": prefix, **RECORDS[prefix]})
    return offered
