"""Names as BinderHub makes them: image names, build names and temporary hub user names.

Pure functions. Existing deployments and caches key on these names, so they follow BinderHub's
rules byte for byte: escaping with `-XX` (hex of each UTF-8 byte), a 6-hex sha256 suffix of the
build slug, length limits, lowercase.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

_LETTERS_DIGITS = frozenset(string.ascii_letters + string.digits)
_SUFFIX_CHARS = string.ascii_lowercase + string.digits

IMAGE_NAME_LIMIT = 255
BUILD_NAME_LIMIT = 63
USER_PREFIX_LIMIT = 26
USER_SUFFIX_LENGTH = 8


def escape(text: str, safe: frozenset[str], escape_char: str = "-") -> str:
    """Escape every character outside `safe` as `escape_char` + the upper-case hex of each byte.

    The escape character itself is always escaped, so distinct inputs stay distinct.
    """
    out: list[str] = []
    for char in text:
        if char in safe and char != escape_char:
            out.append(char)
        else:
            out.extend(f"{escape_char}{byte:X}" for byte in char.encode("utf-8"))
    return "".join(out)


def safe_build_slug(build_slug: str, limit: int, hash_length: int = 6) -> str:
    """The escaped slug cut to fit `limit`, with a hash of the whole slug to keep it unique."""
    slug_hash = hashlib.sha256(build_slug.encode("utf-8")).hexdigest()[:hash_length]
    escaped = escape(build_slug, _LETTERS_DIGITS)
    return f"{escaped[: limit - hash_length - 1]}-{slug_hash}".lower()


def image_name(prefix: str, build_slug: str, resolved_ref: str) -> str:
    """`<prefix><safe slug>:<resolved ref>`, as BinderHub names the image of a build."""
    repo = prefix + safe_build_slug(build_slug, limit=IMAGE_NAME_LIMIT - len(prefix))
    return f"{repo}:{resolved_ref}".replace("_", "-").lower()


def build_name(build_slug: str, resolved_ref: str, prefix: str = "build-") -> str:
    """A DNS-label-safe name of one build (BinderHub's build pod names), at most 63 chars.

    The ref is shortened the way the slug is (3 escaped characters, a dash, 2 hex of its sha256),
    as BinderHub has done since 2020, so both name the same build alike.
    """
    ref_length = 6
    slug = safe_build_slug(build_slug, limit=BUILD_NAME_LIMIT - len(prefix) - ref_length - 1)
    ref = safe_build_slug(resolved_ref, limit=ref_length, hash_length=2)
    return f"{prefix}{slug}-{ref[:ref_length]}".lower()


def user_name_for_repo(repo_url: str, launch_id: str = "") -> str:
    """A temporary hub user: the repository's name plus 8 characters.

    The 8 characters are random, or derived from `launch_id` one way (a hash), so asking again
    for the same launch names the same user, while a user name (it is in the session's URL)
    does not give away the launch id that re-attaches to the session.
    """
    name = repo_url.rstrip("/").rsplit("/", 1)[-1]
    name = name.removesuffix(".git")
    prefix = re.sub(r"[^a-z0-9]+", "-", name.lower())[:USER_PREFIX_LIMIT].strip("-") or "binder"
    if not launch_id:
        return f"{prefix}-{server_name_for_launch()}"
    digest = hashlib.sha256(f"binder-launch:{launch_id}".encode()).digest()
    first = string.ascii_lowercase[digest[0] % 26]
    rest = "".join(_SUFFIX_CHARS[byte % len(_SUFFIX_CHARS)] for byte in digest[1:USER_SUFFIX_LENGTH])
    return f"{prefix}-{first}{rest}"


def launch_key(launch_id: str) -> str:
    """What a session keeps of the launch id that may re-attach to it: a hash, checked on re-attach.

    Another hash than the user name's, so the name (public, in the session URL) does not give it away.
    """
    return hashlib.sha256(f"binder-launch-key:{launch_id}".encode()).hexdigest() if launch_id else ""


def server_name_for_launch() -> str:
    """8 random characters, the first a letter: JupyterHub's server names must start with one."""
    rest = "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(USER_SUFFIX_LENGTH - 1))
    return secrets.choice(string.ascii_lowercase) + rest


_IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]{0,254}:[A-Za-z0-9._-]{1,128}$")


def is_valid_image_name(name: str) -> bool:
    """True for names `image_name` can produce (registry path, repository, tag); no `..`."""
    return bool(_IMAGE_RE.match(name)) and ".." not in name
