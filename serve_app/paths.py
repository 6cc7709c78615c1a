"""Pure: the provider and spec of a request, taken from the raw (still percent-encoded) path.

ASGI servers decode the path, which would turn a git spec's `%2F` into `/`; BinderHub's specs are
defined on the encoded path, so routes read `raw_path`.
"""

from __future__ import annotations

from urllib.parse import urlencode

from binder_actors.providers import InvalidSpec

MAX_SPEC_LENGTH = 4096


def provider_and_spec(raw_path: str, marker: str) -> tuple[str, str]:
    """(`provider`, `spec`) from `<anything>/<marker>/<provider>/<spec>`, spec still encoded."""
    head, found, rest = raw_path.partition(f"/{marker}/")
    if not found:
        raise InvalidSpec(f"The path must look like /{marker}/<provider>/<spec>.")
    provider, slash, spec = rest.partition("/")
    spec = spec.rstrip("/")  # `/v2/gh/org/repo/HEAD/` is the same link; no ref ends in a slash
    if not provider or not slash or not spec:
        raise InvalidSpec(f"The path must look like /{marker}/<provider>/<spec>; the spec is missing.")
    if len(spec) > MAX_SPEC_LENGTH:
        raise InvalidSpec(f"The spec is longer than {MAX_SPEC_LENGTH} characters.")
    return provider, spec


def route_prefix(base_path: str) -> str:
    """Serve's route_prefix for a base URL: `/` stays, `/binder/` becomes `/binder`."""
    return "/" + base_path.strip("/") if base_path.strip("/") else "/"


def legacy_redirect(base_path: str, user: str, repo: str, path: str) -> str:
    """Where `/repo/<user>/<repo>[/path]` goes (BinderHub's legacy redirect): master of that GitHub
    repository, with the path, when there is one besides slashes, as `urlpath`."""
    target = f"{base_path}v2/gh/{user}/{repo}/master"
    return f"{target}?{urlencode({'urlpath': path})}" if path.strip("/") else target
