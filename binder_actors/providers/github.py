"""The `gh` and `gist` providers: specs as BinderHub reads them, refs resolved through GitHub's REST API.

Revalidation sends the last ETag, so a ref re-checked after the cache expires costs no rate limit
when it has not moved (GitHub answers 304).
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote, unquote

import httpx

from binder_actors.config import ProviderSettings
from binder_actors.providers.base import InvalidSpec, ParsedSpec, ProviderLabels, ResolvedRef, ResolveError, pinned
from binder_actors.providers.git import check_ref
from binder_actors.providers.upstream import Upstream

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_GIST_ID_RE = re.compile(r"^[A-Za-z0-9]+$")
_DEFAULT_SETTINGS = ProviderSettings()
HEAD_ALIASES = ("", "HEAD", "master", "main")


def split_github_spec(spec: str) -> tuple[str, str, str]:
    """`user/repo/ref` (the ref may hold slashes), with BinderHub's help when the ref is missing."""
    parts = spec.split("/", 2)
    if len(parts) != 3 or not parts[2]:
        message = f'Spec is not of the form "user/repo/ref", provided: "{spec}".'
        if len(parts) == 2 and parts[-1] not in {"main", "master", "HEAD"}:
            message += f' Did you mean "{spec}/HEAD"?'
        raise InvalidSpec(message)
    return parts[0], parts[1], parts[2]


def check_name(name: str, what: str) -> str:
    if not _NAME_RE.match(name) or name in {".", ".."}:
        raise InvalidSpec(f"{name!r} is not a valid GitHub {what} name (letters, digits, '-', '_' and '.').")
    return name


def github_headers(settings: ProviderSettings) -> tuple[dict[str, str], httpx.BasicAuth | None]:
    """Authorization for GitHub's API: a token header, or the OAuth app's id and secret."""
    headers = {"Accept": "application/vnd.github+json"}
    token = settings.github_access_token.get_secret_value()
    if token:
        headers["Authorization"] = f"token {token}"
    secret = settings.github_client_secret.get_secret_value()
    auth = httpx.BasicAuth(settings.github_client_id, secret) if settings.github_client_id and secret else None
    return headers, auth


def rate_limit_error(response: httpx.Response) -> ResolveError | None:
    """BinderHub's message when GitHub's rate limit is spent: when to try again, in 5-minute steps."""
    if response.status_code not in (403, 429) or response.headers.get("x-ratelimit-remaining") != "0":
        return None
    reset_seconds = max(0, int(response.headers.get("x-ratelimit-reset", "0")) - int(time.time()))
    minutes = 5 * (1 + reset_seconds // 60 // 5)
    log.error(
        "GitHub rate limit exceeded limit=%s reset_in=%ss", response.headers.get("x-ratelimit-limit"), reset_seconds
    )
    return ResolveError(f"GitHub rate limit exceeded. Try again in {minutes} minutes.", 429)


def _log_rate_limit(response: httpx.Response) -> None:
    remaining, limit = response.headers.get("x-ratelimit-remaining"), response.headers.get("x-ratelimit-limit")
    if not (remaining and limit and remaining.isdigit() and limit.isdigit() and int(limit)):
        return
    fraction = int(remaining) / int(limit)
    level = logging.WARNING if fraction < 0.2 else logging.INFO if fraction < 0.5 else logging.DEBUG
    log.log(level, "GitHub rate limit remaining=%s limit=%s", remaining, limit)


async def github_get(upstream: Upstream, url: str, what: str, *, revalidate: bool = False) -> object | None:
    """A GitHub API document, or None for 404/422 (no such repository, ref or gist).

    With `revalidate`, the last ETag of `url` is sent and a 304 returns the document seen then.
    """
    headers, auth = github_headers(upstream.settings)
    remembered = upstream.etag_for(url) if revalidate else None
    if remembered:
        headers["If-None-Match"] = remembered[0]
    response = await upstream.request("GET", url, what=what, headers=headers, auth=auth)
    _log_rate_limit(response)
    if response.status_code == 304 and remembered:
        return remembered[1]
    limited = rate_limit_error(response)
    if limited:
        raise limited
    if response.status_code in (404, 422):
        return None
    if response.status_code >= 400:
        raise ResolveError(f"{what} answered {response.status_code}.", 502)
    document = response.json()
    if revalidate:
        upstream.remember_etag(url, response.headers.get("etag"), document)
    return document


class GitHubProvider:
    prefix = "gh"
    display_name = "GitHub"
    labels = ProviderLabels(text="GitHub repository name or URL")
    head_fallback = True

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        settings = settings or _DEFAULT_SETTINGS
        user, repo, ref = split_github_spec(spec)
        user = check_name(unquote(user), "user")
        repo = check_name(unquote(repo).removesuffix(".git"), "repository")
        return ParsedSpec(
            provider=self.prefix,
            spec=spec,
            repo_url=f"{settings.github_url.rstrip('/')}/{user}/{repo}",
            unresolved_ref=check_ref(unquote(ref)),
            build_slug=f"{user}-{repo}",
        )

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        user, repo = _user_repo(parsed)
        api = upstream.settings.github_api_url.rstrip("/")
        url = f"{api}/repos/{user}/{repo}/commits/{quote(parsed.unresolved_ref, safe='')}"
        commit = await github_get(upstream, url, f"GitHub ({user}/{repo})", revalidate=True)
        if not isinstance(commit, dict) or not isinstance(commit.get("sha"), str):
            raise ResolveError(
                f"Could not resolve ref for gh:{parsed.spec}. Double check your URL and that the repository is public.",
                404,
            )
        sha = commit["sha"]
        return pinned(
            parsed,
            sha,
            ref_url=f"{parsed.repo_url}/tree/{sha}",
            persistent_spec=f"{user}/{repo}/{sha}",
        )


def _user_repo(parsed: ParsedSpec) -> tuple[str, str]:
    user, repo = parsed.repo_url.rstrip("/").rsplit("/", 2)[-2:]
    return user, repo


class GistProvider:
    prefix = "gist"
    display_name = "Gist"
    labels = ProviderLabels(text="Gist ID (username/gistId) or URL", tag_text="Git commit SHA")
    head_fallback = False  # "master", "main" and HEAD all mean the latest revision already

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        settings = settings or _DEFAULT_SETTINGS
        parts = spec.split("/")
        if len(parts) < 2 or not parts[1]:
            raise InvalidSpec(f'Spec is not of the form "username/gistId[/ref]", provided: "{spec}".')
        user = check_name(unquote(parts[0]), "user")
        gist_id = unquote(parts[1])
        if not _GIST_ID_RE.match(gist_id):
            raise InvalidSpec(f"{gist_id!r} is not a gist id (letters and digits).")
        ref = unquote(parts[2]) if len(parts) > 2 else ""
        if ref:
            check_ref(ref)
        return ParsedSpec(
            provider=self.prefix,
            spec=spec,
            repo_url=f"{settings.gist_url.rstrip('/')}/{user}/{gist_id}.git",
            unresolved_ref=ref,
            build_slug=gist_id,
        )

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        gist_id = parsed.build_slug
        api = upstream.settings.github_api_url.rstrip("/")
        gist = await github_get(upstream, f"{api}/gists/{gist_id}", f"GitHub gist {gist_id}")
        if not isinstance(gist, dict):
            raise ResolveError(f"Could not resolve ref for gist:{parsed.spec}. Double check your URL.", 404)
        if not gist.get("public") and not upstream.settings.allow_secret_gist:
            raise ResolveError(
                "This gist is secret, and secret gists are not allowed here "
                "(an administrator can allow them with BINDER_PROVIDERS__ALLOW_SECRET_GIST).",
                403,
            )
        versions = [entry["version"] for entry in gist.get("history", []) if "version" in entry]
        ref = parsed.unresolved_ref
        if ref in HEAD_ALIASES and versions:
            sha = versions[0]
        elif ref in versions:
            sha = ref
        else:
            raise ResolveError(f"Could not resolve ref {ref!r} of gist {gist_id}: no such revision.", 404)
        web = parsed.repo_url.removesuffix(".git")
        user = web.rsplit("/", 2)[-2]
        return pinned(parsed, sha, ref_url=f"{web}/{sha}", persistent_spec=f"{user}/{gist_id}/{sha}")
