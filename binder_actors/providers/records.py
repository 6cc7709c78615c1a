"""Record providers: zenodo, figshare and dataverse DOIs (through doi.org), HydroShare resources, CKAN datasets.

A record is not a git repository: its "ref" is the version the record has now, and the build
slug names that version, as BinderHub names it. The spec itself is what repo2docker is given.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from binder_actors.config import ProviderSettings
from binder_actors.names import escape
from binder_actors.providers.base import InvalidSpec, ParsedSpec, ProviderLabels, ResolvedRef, ResolveError, pinned
from binder_actors.providers.upstream import Upstream, check_redirect_target

_DOI_RE = re.compile(r"^10\.\d{4,9}/[^\s\x00-\x1f\x7f]+$")
_FIGSHARE_URL_RE = re.compile(r"(.*)/articles/([^/]+)/([^/]+)/(\d+)(/)?(\d+)?")
_HYDROSHARE_ID_RE = re.compile(r".*([0-9a-f]{32}).*")
_SLUG_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_RECORD_REF_TEXT = "Git ref (branch, tag, or commit)"
_DEFAULT_SETTINGS = ProviderSettings()


def check_doi(spec: str, example: str) -> str:
    doi = unquote(spec).strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "doi:"):
        doi = doi.removeprefix(prefix)
    if not _DOI_RE.match(doi):
        raise InvalidSpec(f"{spec!r} is not a DOI: expected something like {example}.")
    return doi


def _parsed(prefix: str, spec: str, repo_url: str, build_slug: str) -> ParsedSpec:
    return ParsedSpec(provider=prefix, spec=spec, repo_url=repo_url, unresolved_ref="", build_slug=build_slug)


def _epoch(timestamp: str, what: str) -> int:
    """Seconds since 1970 of an ISO timestamp without zone (the upstreams' are UTC), fraction dropped."""
    try:
        parsed = datetime.strptime(timestamp.split(".")[0].removesuffix("Z"), "%Y-%m-%dT%H:%M:%S")
    except (ValueError, AttributeError):
        raise ResolveError(f"{what} gave an unreadable date {timestamp!r}.", 502) from None
    return int(parsed.replace(tzinfo=timezone.utc).timestamp())


class _RecordProvider:
    labels_text = ""
    head_fallback = False

    @property
    def labels(self) -> ProviderLabels:
        return ProviderLabels(
            text=self.labels_text, tag_text=_RECORD_REF_TEXT, ref_prop_disabled=True, label_prop_disabled=True
        )


class ZenodoProvider(_RecordProvider):
    prefix = "zenodo"
    display_name = "Zenodo DOI"
    labels_text = "Zenodo DOI (10.5281/zenodo.3242074)"

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        doi = check_doi(spec, "10.5281/zenodo.3242074")
        return _parsed(self.prefix, spec, doi, f"zenodo-{doi.rsplit('.', 1)[-1]}")

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        landing = await upstream.resolve_doi(parsed.repo_url)
        record_id = urlsplit(landing).path.rstrip("/").rsplit("/", 1)[-1]
        if not record_id.isdigit():
            raise ResolveError(f"The DOI {parsed.repo_url} does not lead to a Zenodo record ({landing}).", 404)
        # a concept DOI names every version and leads to the latest: pin the version it led to
        resolved_spec = parsed.repo_url.split("zenodo")[0] + "zenodo." + record_id
        return pinned(
            parsed,
            record_id,
            ref_url=f"{upstream.settings.doi_resolver_url.rstrip('/')}/{resolved_spec}",
            persistent_spec=resolved_spec,
            build_slug=f"zenodo-{record_id}",
        )


class FigshareProvider(_RecordProvider):
    prefix = "figshare"
    display_name = "Figshare DOI"
    labels_text = "Figshare DOI (10.6084/m9.figshare.9782777.v1)"

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        doi = check_doi(spec, "10.6084/m9.figshare.9782777.v1")
        return _parsed(self.prefix, spec, doi, f"figshare-{doi.split('figshare.', 1)[-1]}")

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        landing = await upstream.resolve_doi(parsed.repo_url)
        match = _FIGSHARE_URL_RE.match(landing)
        if not match:
            raise ResolveError(f"The DOI {parsed.repo_url} does not lead to a Figshare article ({landing}).", 404)
        article_id, version = match.group(4), match.group(6) or "1"  # no version in the URL means version 1
        record_id = f"{article_id}.v{version}"
        resolved_spec = parsed.repo_url.split("figshare")[0] + "figshare." + record_id
        return pinned(
            parsed,
            record_id,
            ref_url=f"{upstream.settings.doi_resolver_url.rstrip('/')}/{resolved_spec}",
            persistent_spec=resolved_spec,
            build_slug=f"figshare-{record_id}",
        )


def dataverse_build_slug(identifier: str) -> str:
    return "dataverse-" + escape(identifier, _SLUG_SAFE).lower()


class DataverseProvider(_RecordProvider):
    prefix = "dataverse"
    display_name = "Dataverse DOI"
    labels_text = "Dataverse DOI (10.7910/DVN/TJCLKP)"

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        doi = check_doi(spec, "10.7910/DVN/TJCLKP")
        return _parsed(self.prefix, spec, doi, dataverse_build_slug(doi.split("/", 1)[1]))

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        landing = urlsplit(await upstream.resolve_doi(parsed.repo_url))
        query = (
            landing.query if "persistentId=" in landing.query else urlencode({"persistentId": f"doi:{parsed.repo_url}"})
        )
        api_url = urlunsplit((landing.scheme, landing.netloc, "/api/datasets/:persistentId", query, ""))
        answer = await upstream.get_json(api_url, what=f"the Dataverse dataset {parsed.repo_url}")
        try:
            data = answer["data"]
            if answer.get("status") != "OK":
                raise KeyError("status")
            version = data["latestVersion"]
            record_id = f"{data['id']}.v{version['versionNumber']}.{version['versionMinorNumber']}"
            identifier = data["identifier"]
            resolved_spec = f"{data['authority']}/{identifier}"
            ref_url = data["persistentUrl"]
        except (KeyError, TypeError):
            raise ResolveError(f"The Dataverse dataset {parsed.repo_url} could not be read.", 502) from None
        return pinned(
            parsed,
            record_id,
            ref_url=ref_url,
            persistent_spec=resolved_spec,
            build_slug=dataverse_build_slug(identifier),
        )


class HydroshareProvider(_RecordProvider):
    prefix = "hydroshare"
    display_name = "Hydroshare resource"
    labels_text = "Hydroshare resource id or URL"

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        settings = settings or _DEFAULT_SETTINGS
        match = _HYDROSHARE_ID_RE.match(unquote(spec))
        if not match:
            raise InvalidSpec("The specified Hydroshare resource id was not recognized (32 hexadecimal characters).")
        resource_id = match.group(1)
        repo_url = f"{settings.hydroshare_url.rstrip('/')}/resource/{resource_id}"
        return _parsed(self.prefix, spec, repo_url, f"hydroshare-{resource_id}")

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        resource_id = parsed.build_slug.removeprefix("hydroshare-")
        base = upstream.settings.hydroshare_url.rstrip("/")
        what = f"the HydroShare resource {resource_id}"
        metadata = await upstream.get_json(f"{base}/hsapi/resource/{resource_id}/scimeta/elements", what=what)
        modified = next(
            (
                d.get("start_date")
                for d in metadata.get("dates", [])
                if isinstance(d, dict) and d.get("type") == "modified"
            ),
            None,
        )
        if not isinstance(modified, str):
            raise ResolveError(f"{what} has no modification date.", 502)
        # HydroShare keeps no history: the version is the day-resolution modification time
        record_id = f"{resource_id}.v{_epoch(modified, what)}"
        return pinned(
            parsed,
            record_id,
            ref_url=parsed.repo_url,
            persistent_spec=parsed.repo_url,
            build_slug=f"hydroshare-{record_id}",
        )


def ckan_activity_id(url: str) -> str | None:
    """The activity (a past version) a CKAN dataset URL names: `?activity_id=<id>` or `/history/<id>`."""
    parts = urlsplit(url)
    for name, value in parse_qsl(parts.query):
        if name == "activity_id" and value:
            return value
    segments = parts.path.rstrip("/").split("/")
    if len(segments) >= 2 and segments[-2] == "history":
        return segments[-1]
    return None


class CKANProvider(_RecordProvider):
    prefix = "ckan"
    display_name = "CKAN dataset"
    labels_text = "CKAN dataset URL (https://demo.ckan.org/dataset/sample-dataset-1)"

    def parse(
        self, spec: str, settings: ProviderSettings | None = None, *, allow_local_repos: bool = False
    ) -> ParsedSpec:
        url = unquote(spec).strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "/dataset/" not in parts.path:
            raise InvalidSpec(f"{spec!r} is not a CKAN dataset URL: expected https://<ckan site>/dataset/<name>.")
        dataset_id = parts.path.split("/dataset/", 1)[1].split("/", 1)[0]
        if not dataset_id or any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
            raise InvalidSpec(f"{spec!r} names no dataset: expected https://<ckan site>/dataset/<name>.")
        return _parsed(self.prefix, spec, url, f"ckan-{dataset_id}")

    async def resolve(self, parsed: ParsedSpec, upstream: Upstream) -> ResolvedRef:
        # the user names the host: keep this service from being pointed into its own network
        check_redirect_target(parsed.repo_url, allow_private=upstream.allow_local_repos)
        parts = urlsplit(parsed.repo_url)
        dataset_id = parsed.build_slug.removeprefix("ckan-")
        api = urlunsplit((parts.scheme, parts.netloc, parts.path.split("/dataset/")[0] + "/api/3/action/", "", ""))
        what = f"the CKAN dataset {dataset_id}"
        activity_id = ckan_activity_id(parsed.repo_url)
        if activity_id:  # a past version: its time is the activity's
            action, query, field = "activity_show", {"id": activity_id, "include_data": "true"}, "timestamp"
        else:
            action, query, field = "package_show", {"id": dataset_id}, "metadata_modified"
        try:
            answer = await upstream.get_json(f"{api}{action}?{urlencode(query)}", what=what)
        except ResolveError as error:
            if error.status_code != 404:
                raise
            answer = {}
        result = answer.get("result") if isinstance(answer, dict) and answer.get("success") else None
        modified = result.get(field) if isinstance(result, dict) else None
        if not isinstance(modified, str):
            raise ResolveError(f"Could not resolve {what}: the site does not know it. Double check your URL.", 404)
        record_id = f"{dataset_id}.v{_epoch(modified, what)}"
        return pinned(parsed, record_id, ref_url=parsed.repo_url, persistent_spec=parsed.spec)
