"""Repository providers: parse a Binder spec (pure) and resolve its ref to a commit (async I/O)."""

from __future__ import annotations

from binder_actors.providers.base import (
    InvalidSpec,
    ParsedSpec,
    RepoProvider,
    ResolvedRef,
    ResolveError,
)
from binder_actors.providers.git import GitProvider

PROVIDERS: dict[str, RepoProvider] = {provider.prefix: provider for provider in (GitProvider(),)}


def get_provider(prefix: str) -> RepoProvider:
    try:
        return PROVIDERS[prefix]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise InvalidSpec(f"Unknown provider {prefix!r}. Supported providers: {known}.") from None


def parse_spec(provider_prefix: str, spec: str, *, allow_local_repos: bool = False) -> ParsedSpec:
    """Take a spec apart without any I/O; raises InvalidSpec with a message for the user."""
    return get_provider(provider_prefix).parse(spec, allow_local_repos=allow_local_repos)


__all__ = [
    "PROVIDERS",
    "InvalidSpec",
    "ParsedSpec",
    "RepoProvider",
    "ResolveError",
    "ResolvedRef",
    "get_provider",
    "parse_spec",
]
