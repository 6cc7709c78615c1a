"""Pure: Binder links taken apart, and where the browser lands (urlpath / labpath / filepath).

The rules are BinderHub's client's: `labpath` opens `doc/tree/<path>`, else `filepath` opens
`tree/<path>` (one trailing slash dropped, the path as JavaScript's encodeURI writes it), else
`urlpath` is taken as is; leading slashes of the result are dropped.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import BaseModel

from binder_actors.config import ProviderSettings
from binder_actors.providers import InvalidSpec, parse_spec

# What JavaScript's encodeURI leaves alone, so paths are encoded as BinderHub's client does.
_ENCODE_URI_SAFE = ";,/?:@&=+$-_.!~*'()#"


def _check_stays_inside(path: str, name: str) -> None:
    segments = unquote(path).split("?", 1)[0].replace("\\", "/").split("/")
    if ".." in segments or path.startswith("//") or "://" in path.split("?", 1)[0]:
        raise InvalidSpec(f"{name}={path!r} leaves the server: use a path inside the repository.")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise InvalidSpec(f"{name} holds control characters.")


def _without_one_trailing_slash(path: str) -> str:
    return path[:-1] if path.endswith("/") else path


def redirect_path(urlpath: str | None = None, labpath: str | None = None, filepath: str | None = None) -> str:
    """The path, relative to the server URL, that a launch ends on ('' for the default URL).

    BinderHub's client: `labpath` (present, even empty) wins, then `filepath`, then `urlpath`.
    """
    if labpath is not None:
        _check_stays_inside(labpath, "labpath")
        path = "doc/tree/" + quote(_without_one_trailing_slash(labpath), safe=_ENCODE_URI_SAFE)
    elif filepath is not None:
        _check_stays_inside(filepath, "filepath")
        path = "tree/" + quote(_without_one_trailing_slash(filepath), safe=_ENCODE_URI_SAFE)
    elif urlpath is not None:
        _check_stays_inside(urlpath, "urlpath")
        path = urlpath
    else:
        return ""
    return path.lstrip("/")


class BinderLink(BaseModel):
    """A whole Binder URL taken apart: what it launches and where the browser ends up."""

    provider: str
    spec: str  # still percent-encoded, as in the URL
    repo_url: str
    unresolved_ref: str
    build_slug: str
    redirect_path: str


_LEGACY_RE = re.compile(r"(?:^|/)repo/(?P<user>[^/]+)/(?P<repo>[^/]+)(?P<path>/.*)?$")


def _provider_and_spec(url: str, path: str) -> tuple[str, str, str | None]:
    """(provider, spec, legacy urlpath) from a URL path; the legacy form means gh at master."""
    if "/v2/" in f"/{path}":
        rest = f"/{path}".split("/v2/", 1)[1]
    else:
        legacy = _LEGACY_RE.search(path)
        if legacy:
            spec = f"{legacy['user']}/{legacy['repo']}/master"
            return "gh", spec, (legacy["path"] or "").strip("/") or None
        if urlsplit(url).scheme:
            raise InvalidSpec(f"{url!r} is not a Binder link: it has no /v2/<provider>/<spec> part.")
        rest = path
    provider, _, spec = rest.strip("/").partition("/")
    if not provider or not spec:
        raise InvalidSpec(f"{url!r} is not a Binder link: expected /v2/<provider>/<spec>.")
    return provider, spec.rstrip("/"), None


def parse_binder_url(
    url: str, *, settings: ProviderSettings | None = None, allow_local_repos: bool = False
) -> BinderLink:
    """Take apart a Binder URL of any deployment, as BinderHub and its browser client read it.

    Takes `https://host[/prefix]/v2/<provider>/<spec>[?urlpath=|labpath=|filepath=]`, the legacy
    `https://host/repo/<user>/<repo>[/path]` (GitHub at master, the path as urlpath), and
    `<provider>/<spec>` alone. Raises InvalidSpec when the URL is not a Binder link.
    """
    parts = urlsplit(url.strip())
    provider, spec, legacy_urlpath = _provider_and_spec(url, parts.path)
    parsed = parse_spec(provider, spec, settings=settings, allow_local_repos=allow_local_repos)
    query = parse_qs(parts.query, keep_blank_values=True)  # `labpath=` counts, as URLSearchParams.has

    def first(name: str) -> str | None:
        return query.get(name, [None])[0]

    return BinderLink(
        provider=provider,
        spec=spec,
        repo_url=parsed.repo_url,
        unresolved_ref=parsed.unresolved_ref,
        build_slug=parsed.build_slug,
        redirect_path=redirect_path(legacy_urlpath or first("urlpath"), first("labpath"), first("filepath")),
    )
