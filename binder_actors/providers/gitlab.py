"""The `gl` provider: a url-escaped (possibly nested) namespace and a ref, resolved by GitLab's API v4."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from binder_actors.config import ProviderSettings
from binder_actors.providers.base import InvalidSpec, ParsedSpec, ProviderLabels, ResolvedRef, ResolveError, pinned
from binder_actors.providers.git import check_ref
from binder_actors.providers.upstream import Upstream

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
_DEFAULT_SETTINGS = ProviderSettings()


def gitlab_build_slug(namespace: str) -> str:
    """BinderHub's slug: '-' within a segment becomes '_-', segments are joined with '-'."""
    return "-".join(segment.replace("-", "_-") for segment in namespace.split("/"))


class GitLabProvider:
    prefix = "gl"
    display_name = "GitLab.com"
    labels = ProviderLabels(text="GitLab.com repository or URL")
    head_fallback = True

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        settings = settings or _DEFAULT_SETTINGS
        quoted_namespace, slash, ref = spec.partition("/")
        if not slash or not ref:
            raise InvalidSpec(
                f'Spec is not of the form "<url-escaped namespace>/ref", provided: "{spec}". '
                f'Did you mean "{quote(unquote(spec), safe="")}/HEAD"?'
            )
        namespace = unquote(quoted_namespace).strip("/")
        segments = namespace.split("/")
        if len(segments) < 2 or not all(_SEGMENT_RE.match(s) and s not in {".", ".."} for s in segments):
            raise InvalidSpec(
                f"{namespace!r} is not a GitLab project path: expected group[/subgroup...]/project, url-escaped."
            )
        return ParsedSpec(
            provider=self.prefix,
            spec=spec,
            repo_url=f"{settings.gitlab_url.rstrip('/')}/{namespace}.git",
            unresolved_ref=check_ref(unquote(ref)),
            build_slug=gitlab_build_slug(namespace),
        )

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        base = upstream.settings.gitlab_url.rstrip("/")
        namespace = parsed.repo_url.removeprefix(base + "/").removesuffix(".git")
        url = (
            f"{base}/api/v4/projects/{quote(namespace, safe='')}"
            f"/repository/commits/{quote(parsed.unresolved_ref, safe='')}"
        )
        token = upstream.settings.gitlab_private_token.get_secret_value()
        headers = {"PRIVATE-TOKEN": token} if token else {}
        try:
            commit = await upstream.get_json(url, what=f"GitLab ({namespace})", headers=headers)
        except ResolveError as error:
            if error.status_code != 404:
                raise
            raise ResolveError(
                f"Could not resolve ref for gl:{parsed.spec}. Double check your URL and that the project is public.",
                404,
            ) from None
        if not isinstance(commit, dict) or not isinstance(commit.get("id"), str):
            raise ResolveError(f"GitLab ({namespace}) answered without a commit id.", 502)
        sha = commit["id"]
        quoted_namespace = parsed.spec.partition("/")[0]
        return pinned(
            parsed,
            sha,
            ref_url=f"{base}/{namespace}/tree/{sha}",
            persistent_spec=f"{quoted_namespace}/{sha}",
        )
