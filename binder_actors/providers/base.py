"""What every repository provider shares: the parsed spec, the resolved ref, and their errors."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


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
    """A spec taken apart, before any network call."""

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


class RepoProvider(Protocol):
    """One provider prefix of Binder URLs (`gh`, `git`, ...)."""

    prefix: str
    display_name: str

    def parse(self, spec: str, *, allow_local_repos: bool = False) -> ParsedSpec: ...

    async def resolve(self, parsed: ParsedSpec, *, timeout: float, allow_local_repos: bool = False) -> ResolvedRef: ...
