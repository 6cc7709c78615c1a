"""The `swh` provider (not in BinderHub): a Software Heritage SWHID, checked and pinned through the archive's API.

Directories and revisions are immutable and launch as they are; a release or a snapshot is
pinned to the revision it points at now (a snapshot through its HEAD branch).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from binder_actors.config import ProviderSettings
from binder_actors.providers.base import InvalidSpec, ParsedSpec, ProviderLabels, ResolvedRef, ResolveError, pinned
from binder_actors.providers.upstream import Upstream

_SWHID_RE = re.compile(r"^swh:1:(?P<kind>dir|rev|rel|snp):(?P<hash>[0-9a-f]{40})(;.*)?$")
_API_KINDS = {"dir": "directory", "rev": "revision", "rel": "release", "snp": "snapshot"}
MAX_ALIAS_HOPS = 5


class SoftwareHeritageProvider:
    prefix = "swh"
    display_name = "Software Heritage"
    labels = ProviderLabels(
        text="SWHID (swh:1:dir:..., swh:1:rev:..., swh:1:rel:... or swh:1:snp:...)",
        ref_prop_disabled=True,
        label_prop_disabled=True,
    )
    head_fallback = False

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        match = _SWHID_RE.match(unquote(spec).strip())
        if not match:
            raise InvalidSpec(f"{spec!r} is not a SWHID: expected swh:1:<dir|rev|rel|snp>:<40 hexadecimal characters>.")
        swhid = f"swh:1:{match['kind']}:{match['hash']}"  # qualifiers (origin=, path=) do not change the content
        return ParsedSpec(
            provider=self.prefix,
            spec=spec,
            repo_url=swhid,
            unresolved_ref=match["hash"],
            build_slug=f"swh-{match['hash']}",
        )

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        kind, object_hash = parsed.repo_url.split(":")[2:4]
        if kind == "rel":
            release = await self._get(upstream, "rel", object_hash)
            if release.get("target_type") != "revision":
                raise ResolveError(f"The release {parsed.repo_url} does not point at a revision.", 404)
            kind, object_hash = "rev", release["target"]
        elif kind == "snp":
            kind, object_hash = "rev", self._snapshot_head(await self._get(upstream, "snp", object_hash), parsed)
        else:
            await self._get(upstream, kind, object_hash)
        swhid = f"swh:1:{kind}:{object_hash}"
        return pinned(
            parsed,
            object_hash,
            repo_url=swhid,
            ref_url=f"{upstream.settings.swh_url.rstrip('/')}/{swhid}",
            persistent_spec=swhid,
            build_slug=f"swh-{object_hash}",
        )

    @staticmethod
    async def _get(upstream: Upstream, kind: str, object_hash: str) -> dict:
        api = upstream.settings.swh_url.rstrip("/") + "/api/1"
        token = upstream.settings.swh_token.get_secret_value()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        swhid = f"swh:1:{kind}:{object_hash}"
        response = await upstream.request(
            "GET", f"{api}/{_API_KINDS[kind]}/{object_hash}/", what=f"Software Heritage ({swhid})", headers=headers
        )
        if response.status_code == 404:
            raise ResolveError(f"{swhid} is not in the Software Heritage archive.", 404)
        if response.status_code == 429:
            raise ResolveError("Software Heritage's rate limit is spent: try again later.", 429)
        if response.status_code >= 400:
            raise ResolveError(f"Software Heritage answered {response.status_code} for {swhid}.", 502)
        return response.json()

    @staticmethod
    def _snapshot_head(snapshot: dict, parsed: ParsedSpec) -> str:
        branches = snapshot.get("branches") or {}
        name = "HEAD"
        for _ in range(MAX_ALIAS_HOPS):
            branch = branches.get(name)
            if not isinstance(branch, dict):
                break
            if branch.get("target_type") == "alias":
                name = branch.get("target", "")
                continue
            if branch.get("target_type") == "revision" and isinstance(branch.get("target"), str):
                return branch["target"]
            break
        raise ResolveError(f"The snapshot {parsed.repo_url} has no HEAD branch pointing at a revision.", 404)
