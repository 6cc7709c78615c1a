"""What every repository provider shares: the parsed spec, the resolved ref, and their errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from binder_actors.config import ProviderSettings

if TYPE_CHECKING:
    from binder_actors.providers.upstream import Upstream


class InvalidSpec(ValueError):
    """A spec that no request to anywhere could make sense of; the message says how to fix it."""


class ResolveError(Exception):
    """A well-formed spec whose repository or ref could not be found upstream."""

    def __init__(self, message: str, status_code: int = 404) -> None:
        super().__init__(message, status_code)  # both in args, so it survives pickling by Ray
        self.message = message
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class ParsedSpec(BaseModel):
    """A spec taken apart, before any network call.

    For record providers (zenodo, figshare, ...) the build slug is provisional: the record a DOI
    names is only known after resolution, and `ResolvedRef.build_slug` is the one images use.
    """

    provider: str
    spec: str
    repo_url: str
    unresolved_ref: str
    build_slug: str


class ResolvedRef(BaseModel):
    """A spec pinned to one immutable version of the repository."""

    provider: str
    spec: str
    repo_url: str
    unresolved_ref: str
    resolved_ref: str
    build_slug: str
    ref_url: str
    persistent_spec: str
    notice: str = ""  # something the user should hear (e.g. "master" retried as HEAD), sent as a waiting event


def pinned(
    parsed: ParsedSpec,
    resolved_ref: str,
    *,
    ref_url: str,
    persistent_spec: str,
    build_slug: str | None = None,
    repo_url: str | None = None,
) -> ResolvedRef:
    """The ResolvedRef of `parsed` at `resolved_ref`; slug and URL default to the parsed ones."""
    return ResolvedRef(
        provider=parsed.provider,
        spec=parsed.spec,
        repo_url=repo_url or parsed.repo_url,
        unresolved_ref=parsed.unresolved_ref,
        resolved_ref=resolved_ref,
        build_slug=build_slug or parsed.build_slug,
        ref_url=ref_url,
        persistent_spec=persistent_spec,
    )


class ProviderLabels(BaseModel):
    """How the landing page presents a provider (BinderHub's `labels`, served by /api/repoproviders)."""

    text: str
    tag_text: str = "Git ref (branch, tag, or commit)"
    ref_prop_disabled: bool = False
    label_prop_disabled: bool = False


class RepoProvider(Protocol):
    """One provider prefix of Binder URLs (`gh`, `git`, `zenodo`, ...).

    `parse` is pure: it takes the spec apart or raises InvalidSpec. `resolve` asks the upstream
    (through `Upstream`) which immutable version the spec names now, or raises ResolveError.
    """

    prefix: str
    display_name: str
    labels: ProviderLabels
    head_fallback: bool  # retry a vanished `master`/`main` with HEAD

    def parse(self, spec: str, settings: ProviderSettings, *, allow_local_repos: bool = False) -> ParsedSpec: ...

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef: ...
