"""Pure: where the browser lands in a session, from a Binder link's urlpath / labpath / filepath.

The rules are BinderHub's client's: `urlpath` is taken as is (a leading slash dropped), `labpath`
opens `doc/tree/<path>` and `filepath` opens `tree/<path>` (a trailing slash dropped from both).
"""

from __future__ import annotations

from urllib.parse import quote, unquote

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
