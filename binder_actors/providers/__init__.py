"""Repository providers: parse a Binder spec (pure) and resolve its ref to an immutable version (async I/O).

The prefixes and rules are BinderHub's (gh, gist, gl, git, zenodo, figshare, hydroshare,
dataverse, ckan), plus swh for Software Heritage.
"""

from __future__ import annotations

import logging

from binder_actors.config import BinderConfig, ProviderSettings
from binder_actors.providers.base import (
    InvalidSpec,
    ParsedSpec,
    ProviderLabels,
    RepoProvider,
    ResolvedRef,
    ResolveError,
)
from binder_actors.providers.git import GitProvider
from binder_actors.providers.github import GistProvider, GitHubProvider
from binder_actors.providers.gitlab import GitLabProvider
from binder_actors.providers.records import (
    CKANProvider,
    DataverseProvider,
    FigshareProvider,
    HydroshareProvider,
    ZenodoProvider,
)
from binder_actors.providers.swh import SoftwareHeritageProvider
from binder_actors.providers.upstream import Upstream

log = logging.getLogger(__name__)

PROVIDERS: dict[str, RepoProvider] = {
    provider.prefix: provider
    for provider in (
        GitHubProvider(),
        GistProvider(),
        GitLabProvider(),
        GitProvider(),
        ZenodoProvider(),
        FigshareProvider(),
        HydroshareProvider(),
        DataverseProvider(),
        CKANProvider(),
        SoftwareHeritageProvider(),
    )
}
HEAD_FALLBACK_REFS = ("master", "main")


def get_provider(prefix: str) -> RepoProvider:
    try:
        return PROVIDERS[prefix]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise InvalidSpec(f"Unknown provider {prefix!r}. Supported providers: {known}.") from None


def parse_spec(
    provider_prefix: str, spec: str, *, settings: ProviderSettings | None = None, allow_local_repos: bool = False
) -> ParsedSpec:
    """Take a spec apart without any I/O; raises InvalidSpec with a message for the user."""
    return get_provider(provider_prefix).parse(spec, settings, allow_local_repos=allow_local_repos)


async def resolve_spec(parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
    """Resolve `parsed` upstream, retrying a vanished `master` or `main` with HEAD as BinderHub does.

    Old links name branches that were renamed since; the retry keeps them working and the
    ResolvedRef's `notice` asks the user to update the link.
    """
    provider = get_provider(parsed.provider)
    try:
        return await provider.resolve(parsed, upstream)
    except ResolveError as error:
        fallback = (
            provider.head_fallback
            and upstream.settings.head_fallback
            and parsed.unresolved_ref in HEAD_FALLBACK_REFS
            and error.status_code == 404
        )
        if not fallback:
            raise
    log.info("ref not found, retrying with HEAD spec=%s ref=%s", parsed.spec, parsed.unresolved_ref)
    resolved = await provider.resolve(parsed.model_copy(update={"unresolved_ref": "HEAD"}), upstream)
    notice = (
        f"Could not resolve ref for {parsed.provider}:{parsed.spec}: the branch {parsed.unresolved_ref!r} "
        "does not exist (any more). Trying again with HEAD, the default branch. Please update your links.\n"
    )
    return resolved.model_copy(update={"unresolved_ref": parsed.unresolved_ref, "notice": notice})


async def resolve_once(provider_prefix: str, spec: str, config: BinderConfig) -> ResolvedRef:
    """Parse and resolve one spec outside RefResolver (the CLI's `build`, benchmarks): no caches."""
    parsed = parse_spec(provider_prefix, spec, settings=config.providers, allow_local_repos=config.allow_local_repos)
    upstream = Upstream(config)
    try:
        return await resolve_spec(parsed, upstream)
    finally:
        await upstream.aclose()


__all__ = [
    "PROVIDERS",
    "InvalidSpec",
    "ParsedSpec",
    "ProviderLabels",
    "RepoProvider",
    "ResolveError",
    "ResolvedRef",
    "Upstream",
    "get_provider",
    "parse_spec",
    "resolve_once",
    "resolve_spec",
]
