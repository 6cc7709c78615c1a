"""The `git` provider: any git URL, url-escaped, then a ref; resolved with `git ls-remote`.

Spec: `<url-escaped repository URL>/<ref>`. Everything that reaches git is checked here first,
so that no spec can smuggle options or transports into a git subprocess.
"""

from __future__ import annotations

import asyncio
import os
import re
from urllib.parse import quote, unquote, urlparse

from binder_actors.config import ProviderSettings
from binder_actors.providers.base import InvalidSpec, ParsedSpec, ProviderLabels, ResolvedRef, ResolveError, pinned
from binder_actors.providers.upstream import Upstream, check_redirect_target

SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
_SCP_LIKE_RE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
REMOTE_PROTOCOLS = ("http", "https", "git", "ssh")


def git_environment(allow_local_repos: bool) -> dict[str, str]:
    """The environment of every git subprocess: no prompts, only the transports we allow."""
    protocols = [*REMOTE_PROTOCOLS, "file"] if allow_local_repos else list(REMOTE_PROTOCOLS)
    return {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_ALLOW_PROTOCOL": ":".join(protocols),
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def check_ref(ref: str) -> str:
    """Refuse refs git could read as an option or that carry control characters."""
    if not ref:
        raise InvalidSpec("The ref is empty: add a branch, tag or commit, e.g. `/HEAD`.")
    if ref.startswith("-") or _CONTROL_RE.search(ref) or " " in ref or ".." in ref:
        raise InvalidSpec(f"{ref!r} is not a valid git ref.")
    return ref


def normalize_repo_url(url: str, *, allow_local_repos: bool = False) -> str:
    """A repository URL git may be handed, or InvalidSpec saying why not."""
    if not url:
        raise InvalidSpec("The repository URL is empty.")
    if url.startswith("-") or _CONTROL_RE.search(url) or "::" in url:
        raise InvalidSpec(f"{url!r} is not a repository URL git can be asked to fetch.")
    scp = _SCP_LIKE_RE.match(url)
    if scp:
        url = f"ssh://{scp['user']}@{scp['host']}/{scp['path']}"
    parsed = urlparse(url)
    if parsed.scheme in REMOTE_PROTOCOLS:
        if not parsed.netloc:
            raise InvalidSpec(f"{url!r} has no host.")
        return url
    if allow_local_repos and (parsed.scheme == "file" or (not parsed.scheme and url.startswith("/"))):
        return url
    allowed = ", ".join(REMOTE_PROTOCOLS)
    raise InvalidSpec(
        f"{url!r} is not a supported repository URL: use one of the protocols {allowed}"
        " (local paths and file:// only when BINDER_ALLOW_LOCAL_REPOS is set)."
    )


def pick_sha(ls_remote_output: str, ref: str) -> str | None:
    """The commit `ref` names in `git ls-remote` output: HEAD, a branch, a (peeled) tag, or `refs/<ref>`.

    None when `ref` is not there: ls-remote matches by tail, so its output for `main` may hold only
    `refs/heads/feature/main`, which is another branch, not a stand-in.
    """
    refs: dict[str, str] = {}
    for line in ls_remote_output.splitlines():
        sha, _, name = line.partition("\t")
        if sha and name:
            refs[name] = sha
    candidates = (
        ref,
        f"refs/heads/{ref}",
        f"refs/tags/{ref}^{{}}",
        f"refs/tags/{ref}",
        f"refs/{ref}^{{}}",
        f"refs/{ref}",
    )
    return next((refs[candidate] for candidate in candidates if candidate in refs), None)


async def ls_remote(url: str, ref: str, *, timeout: float, allow_local_repos: bool) -> str:
    """Run `git ls-remote` for one ref; the output, or ResolveError saying what failed."""
    process = await asyncio.create_subprocess_exec(
        "git",
        "ls-remote",
        "--",
        url,
        ref,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=git_environment(allow_local_repos),
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise ResolveError(f"Timed out after {timeout:g}s asking {url} for {ref}.", 504) from None
    if process.returncode != 0:
        reason = stderr.decode(errors="replace").strip().splitlines()
        detail = reason[-1] if reason else f"git exited with {process.returncode}"
        raise ResolveError(f"Could not reach the repository {url}: {detail}", 404)
    return stdout.decode(errors="replace")


class GitProvider:
    prefix = "git"
    display_name = "Git repository"
    labels = ProviderLabels(text="Arbitrary git repository URL (http://git.example.com/repo)")
    head_fallback = True

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        escaped_url, slash, escaped_ref = spec.partition("/")
        if not slash or not escaped_ref:
            raise InvalidSpec(
                f"{spec!r} has no ref. A git spec is the url-escaped repository URL, a slash, "
                "and a ref, e.g. `https%3A%2F%2Fexample.org%2Frepo.git/HEAD`."
            )
        repo_url = normalize_repo_url(unquote(escaped_url), allow_local_repos=allow_local_repos)
        ref = check_ref(unquote(escaped_ref))
        return ParsedSpec(
            provider=self.prefix,
            spec=spec,
            repo_url=repo_url,
            unresolved_ref=ref,
            build_slug=repo_url,
        )

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        if urlparse(parsed.repo_url).scheme in ("http", "https"):
            # git servers on private networks are normal; link-local and metadata addresses never are
            check_redirect_target(parsed.repo_url, allow_private=True)
        resolved = await resolve_git_ref(parsed.repo_url, parsed.unresolved_ref, upstream)
        return pinned(
            parsed,
            resolved,
            ref_url=parsed.repo_url,
            persistent_spec=f"{quote(parsed.repo_url, safe='')}/{resolved}",
        )


async def resolve_git_ref(repo_url: str, ref: str, upstream: Upstream) -> str:
    """The commit `ref` names in the repository: a full sha as is, anything else by `git ls-remote`."""
    if SHA1_RE.match(ref):
        return ref
    output = await ls_remote(repo_url, ref, timeout=upstream.timeout, allow_local_repos=upstream.allow_local_repos)
    found = pick_sha(output, ref)
    if found is None:
        raise ResolveError(
            f"Could not resolve ref {ref!r} in {repo_url}: no branch, tag or "
            "HEAD by that name. Double check the ref, or use a full commit sha.",
            404,
        )
    return found
