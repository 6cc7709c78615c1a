"""Pure: Binder links taken apart, and where the browser lands (urlpath / labpath / filepath).

The rules are BinderHub's client's: `urlpath` is taken as is (a leading slash dropped), `labpath`
opens `doc/tree/<path>` and `filepath` opens `tree/<path>` (a trailing slash dropped from both).
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import BaseModel

from binder_actors.providers.base import InvalidSpec

# What JavaScript's encodeURI leaves alone, so paths are encoded as BinderHub's client does.
_ENCODE_URI_SAFE = ";,/?:@&=+$-_.!~*'()#"


def _check_stays_inside(path: str, name: str) -> None:
    segments = unquote(path).split("?", 1)[0].replace("\\", "/").split("/")
    if ".." in segments or path.startswith("//") or "://" in path.split("?", 1)[0]:
        raise InvalidSpec(f"{name}={path!r} leaves the server: use a path inside the repository.")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise InvalidSpec(f"{name} holds control characters.")


def redirect_path(urlpath: str | None = None, labpath: str | None = None, filepath: str | None = None) -> str:
    """The path, relative to the server URL, that a launch ends on ('' for the default URL)."""
    if urlpath:
        _check_stays_inside(urlpath, "urlpath")
        return urlpath.lstrip("/")
    if labpath:
        _check_stays_inside(labpath, "labpath")
        return "doc/tree/" + quote(labpath.rstrip("/").lstrip("/"), safe=_ENCODE_URI_SAFE)
    if filepath:
        _check_stays_inside(filepath, "filepath")
        return "tree/" + quote(filepath.rstrip("/").lstrip("/"), safe=_ENCODE_URI_SAFE)
    return ""


class BinderLink(BaseModel):
    """A whole Binder URL taken apart."""

    provider: str
    spec: str
    redirect_path: str


def parse_binder_url(url: str) -> BinderLink:
    """Provider, spec (still percent-encoded) and landing path of `https://host[/prefix]/v2/<provider>/<spec>`.

    Also takes `<provider>/<spec>` alone. Raises InvalidSpec when the URL is not a Binder link.
    """
    parts = urlsplit(url)
    path = parts.path
    if "/v2/" in f"/{path}":
        path = f"/{path}".split("/v2/", 1)[1]
    elif parts.scheme:
        raise InvalidSpec(f"{url!r} is not a Binder link: it has no /v2/<provider>/<spec> part.")
    provider, _, spec = path.strip("/").partition("/")
    if not provider or not spec:
        raise InvalidSpec(f"{url!r} is not a Binder link: expected /v2/<provider>/<spec>.")
    query = parse_qs(parts.query)

    def first(name: str) -> str | None:
        return query.get(name, [None])[0]

    return BinderLink(
        provider=provider,
        spec=spec,
        redirect_path=redirect_path(first("urlpath"), first("labpath"), first("filepath")),
    )
