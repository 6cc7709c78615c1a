"""The first step of every host-side build (local, docker): the repository's content in a folder.

Git providers are cloned and checked out at the resolved commit. Records (zenodo, figshare, dataverse,
hydroshare, ckan) and Software Heritage directories are downloaded as repo2docker's content providers
fetch them, from the upstreams the resolvers use, bounded by BINDER_CONTENT_MAX_BYTES.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx

from binder_actors.builders import BuildFailed, Emit
from binder_actors.builders.archives import (
    COPY_CHUNK,
    ByteBudget,
    flatten_single_folder,
    is_zip,
    safe_path,
    unpack_tar,
    unpack_zip,
)
from binder_actors.builders.steps import ProcessGroups, run_step
from binder_actors.config import BinderConfig
from binder_actors.events import progress
from binder_actors.providers.base import ResolvedRef, ResolveError
from binder_actors.providers.git import git_environment
from binder_actors.providers.records import ckan_activity_id
from binder_actors.providers.upstream import MAX_REDIRECTS, Upstream, check_redirect_target
from binder_actors.retry import RetryPolicy

log = logging.getLogger(__name__)

# Upstream hiccups (a 502, a reset connection) pass; a record that is not there does not.
_RETRY = RetryPolicy(attempts=3, first_delay=1.0)
POLL_SECONDS = 2.0  # between asks whether a HydroShare bag or a Software Heritage archive is ready
BAG_WAIT_SECONDS = 120.0  # as repo2docker: a bag not ready by then fails the build


async def fetch_checkout(
    resolved: ResolvedRef, dest: Path, emit: Emit, config: BinderConfig, *, groups: ProcessGroups | None = None
) -> None:
    """Put the content `resolved` names into `dest` (which must not exist), emitting `fetching` events.

    `groups` records the git steps' process groups (the local builder's lock file).
    """
    fetch = _RECORD_FETCHERS.get(resolved.provider)
    if fetch is None:
        await _git_checkout(resolved, dest, emit, config, groups)
        return
    name = f"{resolved.provider} {resolved.persistent_spec}"
    await emit(progress("fetching", f"Fetching {name} (version {resolved.resolved_ref})"))
    dest.mkdir(parents=True)
    upstream = Upstream(config)
    try:
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest.parent) as scratch:
            record = _Record(resolved, dest, Path(scratch), emit, config, upstream)
            await fetch(record)
            count = sum(1 for path in dest.rglob("*") if path.is_file())
            await emit(progress("fetching", f"Fetched {count} files ({record.budget.used / 1e6:.1f} MB downloaded)"))
    except ResolveError as error:
        raise BuildFailed(str(error)) from None
    finally:
        await upstream.aclose()


async def _git_checkout(
    resolved: ResolvedRef, dest: Path, emit: Emit, config: BinderConfig, groups: ProcessGroups | None
) -> None:
    await emit(progress("fetching", f"Fetching {resolved.repo_url} at {resolved.resolved_ref}"))
    git_env = git_environment(config.allow_local_repos)
    clone = ["git", "clone", "--quiet", "--", resolved.repo_url, str(dest)]
    await run_step(clone, emit, what="git clone", phase="fetching", env=git_env, groups=groups)
    await run_step(
        [*("git", "-C", str(dest), "-c", "advice.detachedHead=false"), "checkout", "--quiet", resolved.resolved_ref],
        emit,
        what=f"git checkout {resolved.resolved_ref}",
        phase="fetching",
        env=git_env,
        groups=groups,
    )


class _NotReady(Exception):
    """An upstream still preparing the download (a HydroShare bag answered with a page)."""


class _Record:
    """One record's fetch: its upstream, where files land, and the bytes still allowed."""

    def __init__(
        self, resolved: ResolvedRef, dest: Path, scratch: Path, emit: Emit, config: BinderConfig, upstream: Upstream
    ) -> None:
        self.resolved = resolved
        self.dest = dest
        self.scratch = scratch
        self.emit = emit
        self.config = config
        self.upstream = upstream
        self.settings = config.providers
        self.limit = config.content_max_bytes
        self.budget = ByteBudget(self.limit, f"The content of {resolved.provider} {resolved.persistent_spec}")

    async def json(self, url: str, what: str, headers: dict[str, str] | None = None) -> Any:
        return await _RETRY.call(
            lambda: self.upstream.get_json(url, what=what, headers=headers),
            retry_on_error=lambda error: isinstance(error, ResolveError) and error.status_code in (502, 504),
        )

    async def download(
        self, url: str, target: Path, what: str, headers: dict[str, str] | None = None, content_type: str = ""
    ) -> None:
        """GET `url` into `target`, following redirects (each checked as the resolvers check them).

        With `content_type`, an answer of another type raises _NotReady before its body is read.
        """
        start = self.budget.used

        async def attempt() -> None:
            self.budget.used = start  # a retried download starts its count again
            await self._download_once(url, target, what, headers or {}, content_type)

        def temporary(error: BaseException) -> bool:
            return isinstance(error, ResolveError) and error.status_code in (502, 504)

        await _RETRY.call(attempt, retry_on_error=temporary)

    async def _download_once(
        self, url: str, target: Path, what: str, headers: dict[str, str], content_type: str
    ) -> None:
        current = url
        check_redirect_target(current, allow_private=self.config.allow_local_repos)
        for _ in range(MAX_REDIRECTS):
            try:
                async with self.upstream.http.stream("GET", current, headers=headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        check_redirect_target(current, allow_private=self.config.allow_local_repos)
                        continue
                    if response.status_code in (404, 410):
                        raise ResolveError(f"{what} was not found ({response.status_code}).", 404)
                    if response.status_code >= 400:
                        raise ResolveError(f"{what} answered {response.status_code}.", 502)
                    if content_type and not response.headers.get("content-type", "").startswith(content_type):
                        raise _NotReady
                    declared = int(response.headers.get("content-length") or 0)
                    self.budget.check(declared)  # fail before downloading what cannot fit
                    size = f" ({declared} bytes)" if declared else ""
                    await self.emit(progress("fetching", f"Downloading {what}{size}"))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with target.open("wb") as sink:
                        async for chunk in response.aiter_bytes(COPY_CHUNK):
                            self.budget.take(len(chunk))
                            sink.write(chunk)
                    return
            except httpx.TimeoutException:
                timeout = self.config.upstream_timeout
                raise ResolveError(f"Timed out after {timeout:g}s downloading {what}.", 504) from None
            except httpx.HTTPError as error:
                raise ResolveError(f"Could not download {what}: {type(error).__name__}.", 502) from None
        raise ResolveError(f"{what} redirected more than {MAX_REDIRECTS} times.", 502)

    async def files(self, files: list[tuple[str, str]], *, unzip_single: bool) -> None:
        """Download `(name, url)` files into the checkout; a single zip is unpacked when `unzip_single`."""
        staged = self.scratch / "files"
        staged.mkdir()
        what = f"{self.resolved.provider} {self.resolved.persistent_spec}"
        for name, url in files:
            await self.download(url, safe_path(staged, name, what), name)
        if unzip_single and len(files) == 1:
            archive = safe_path(staged, files[0][0], what)
            if is_zip(archive):
                await self.emit(progress("fetching", f"Unpacking {files[0][0]}"))
                await asyncio.to_thread(unpack_zip, archive, self.dest, self.limit)
                flatten_single_folder(self.dest)
                return
        for child in staged.iterdir():
            shutil.move(child, self.dest / child.name)

    async def wait_until(self, ready: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
        """Ask `ready` every POLL_SECONDS (an upstream preparing a download) for up to `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not await ready():
            if loop.time() > deadline:
                raise BuildFailed(f"{what} was not ready after {seconds:g}s; try again later.")
            await self.emit(progress("fetching", f"Waiting for {what} to be prepared"))
            await asyncio.sleep(POLL_SECONDS)


def _site(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _field(document: Any, *path: str) -> Any:
    """document[path[0]][path[1]]..., or None where a level is missing (upstream JSON is not ours)."""
    for key in path:
        document = document.get(key) if isinstance(document, dict) else None
    return document


def _unreadable(what: str) -> BuildFailed:
    return BuildFailed(f"{what} answered in a shape this service does not read; it may have changed its API.")


async def _zenodo(record: _Record) -> None:
    record_id = record.resolved.resolved_ref
    # the DOI as given leads to the site (a concept DOI, later to newer versions); the record is the pinned one
    landing = await record.upstream.resolve_doi(record.resolved.repo_url)
    what = f"the Zenodo record {record_id}"
    metadata = await record.json(f"{_site(landing)}/api/records/{record_id}", what)
    files_url = _field(metadata, "links", "files")
    if not isinstance(files_url, str):
        raise _unreadable(what)
    entries = _field(await record.json(files_url, f"the files of {what}"), "entries")
    if not isinstance(entries, list):
        raise _unreadable(what)
    files = [(_field(e, "key"), _field(e, "links", "content")) for e in entries]
    if not all(isinstance(name, str) and isinstance(url, str) for name, url in files):
        raise _unreadable(what)
    kind = _field(metadata, "metadata", "upload_type") or _field(metadata, "metadata", "resource_type", "type")
    # As repo2docker: a software record of one zip (GitHub's Zenodo integration) is that zip's content.
    await record.files(files, unzip_single=str(kind).lower() == "software")


async def _figshare(record: _Record) -> None:
    article, _, version = record.resolved.resolved_ref.partition(".v")
    what = f"the Figshare article {article} (version {version})"
    api = record.settings.figshare_api_url.rstrip("/")
    document = await record.json(f"{api}/articles/{article}/versions/{version}", what)
    listed = _field(document, "files")
    if not isinstance(listed, list):
        raise _unreadable(what)
    files = [(_field(f, "name"), _field(f, "download_url")) for f in listed if not _field(f, "is_link_only")]
    if not all(isinstance(name, str) and isinstance(url, str) for name, url in files):
        raise _unreadable(what)
    await record.files(files, unzip_single=len(files) == 1 and files[0][0].endswith(".zip"))


async def _dataverse(record: _Record) -> None:
    doi = record.resolved.persistent_spec
    site = _site(await record.upstream.resolve_doi(record.resolved.repo_url))
    version = record.resolved.resolved_ref.split(".v", 1)[-1]  # "<id>.v<major>.<minor>": the pinned version
    what = f"the Dataverse dataset {doi} (version {version})"
    query = urlencode({"persistentId": f"doi:{doi}"})
    document = await record.json(f"{site}/api/datasets/:persistentId/versions/{version}?{query}", what)
    listed = _field(document, "data", "files")
    if not isinstance(listed, list):
        raise _unreadable(what)
    files = []
    for entry in listed:
        label, file_id = _field(entry, "label"), _field(entry, "dataFile", "id")
        if not isinstance(label, str) or file_id is None:
            raise _unreadable(what)
        folder = _field(entry, "directoryLabel")
        name = f"{folder.strip('/')}/{label}" if isinstance(folder, str) and folder.strip("/") else label
        files.append((name, f"{site}/api/access/datafile/{file_id}"))
    await record.files(files, unzip_single=False)
    flatten_single_folder(record.dest)


async def _hydroshare(record: _Record) -> None:
    resource_id = record.resolved.resolved_ref.split(".v", 1)[0]
    what = f"the HydroShare resource {resource_id}'s bag"
    bag_url = f"{record.settings.hydroshare_url.rstrip('/')}/django_irods/download/bags/{resource_id}"

    bag = record.scratch / "bag.zip"

    async def bag_downloaded() -> bool:
        # HydroShare prepares a bag on demand, answering with a page until it is a zip.
        try:
            await record.download(bag_url, bag, what, content_type="application/zip")
        except _NotReady:
            return False
        return True

    await record.wait_until(bag_downloaded, BAG_WAIT_SECONDS, what)
    unpacked = record.scratch / "bag"
    await asyncio.to_thread(unpack_zip, bag, unpacked, record.limit)
    contents = unpacked / resource_id / "data" / "contents"
    if not contents.is_dir():
        raise BuildFailed(f"{what} has no {resource_id}/data/contents folder: it is not a HydroShare bag.")
    for child in contents.iterdir():
        shutil.move(child, record.dest / child.name)


async def _ckan(record: _Record) -> None:
    url = record.resolved.repo_url
    # the user names the host: keep this service from being pointed into its own network
    check_redirect_target(url, allow_private=record.config.allow_local_repos)
    parts = urlsplit(url)
    api = urlunsplit((parts.scheme, parts.netloc, parts.path.split("/dataset/")[0] + "/api/3/action/", "", ""))
    dataset_id = record.resolved.build_slug.removeprefix("ckan-")
    activity_id = ckan_activity_id(url)
    if activity_id:
        action, query = "activity_data_show", {"id": activity_id, "object_type": "package"}
    else:
        action, query = "package_show", {"id": dataset_id}
    what = f"the CKAN dataset {dataset_id}"
    resources = _field(await record.json(f"{api}{action}?{urlencode(query)}", what), "result", "resources")
    if not isinstance(resources, list):
        raise _unreadable(what)
    files = []
    for resource in resources:
        resource_url = _field(resource, "url")
        if not isinstance(resource_url, str) or not resource_url:
            continue  # a resource without a file (a link to nowhere) has nothing to fetch, as in repo2docker
        name = urlsplit(resource_url).path.rsplit("/", 1)[-1] or str(_field(resource, "id"))
        files.append((name, resource_url))
    await record.files(files, unzip_single=False)


async def _swh(record: _Record) -> None:
    kind, object_hash = record.resolved.repo_url.split(":")[2:4]
    api = record.settings.swh_url.rstrip("/") + "/api/1"
    token = record.settings.swh_token.get_secret_value()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if kind == "rev":
        revision = await record.json(f"{api}/revision/{object_hash}/", f"the revision {object_hash}", headers)
        object_hash = _field(revision, "directory")
        if not isinstance(object_hash, str):
            raise _unreadable("Software Heritage")
    what = f"the Software Heritage directory {object_hash}"
    cooking_url = f"{api}/vault/directory/{object_hash}/"
    response = await record.upstream.request("POST", cooking_url, what=what, headers=headers)
    if response.status_code >= 400:
        raise ResolveError(f"Software Heritage's vault answered {response.status_code} for {what}.", 502)
    fetch_url: list[str] = []

    async def cooked() -> bool:
        task = await record.json(cooking_url, what, headers)
        status = _field(task, "status")
        if status == "failed":
            raise BuildFailed(f"Software Heritage could not prepare {what}: {_field(task, 'progress_message')}")
        if status == "done" and isinstance(_field(task, "fetch_url"), str):
            fetch_url.append(urljoin(cooking_url, task["fetch_url"]))
            return True
        return False

    await record.wait_until(cooked, float(record.config.build_timeout), what)
    archive = record.scratch / "directory.tar.gz"
    await record.download(fetch_url[0], archive, what, headers)
    unpacked = record.scratch / "directory"
    await asyncio.to_thread(unpack_tar, archive, unpacked, record.limit)
    top = unpacked / object_hash  # the vault's archive holds one folder named after the directory
    source = top if top.is_dir() else unpacked
    for child in source.iterdir():
        shutil.move(child, record.dest / child.name)


_RECORD_FETCHERS: dict[str, Callable[[_Record], Awaitable[None]]] = {
    "zenodo": _zenodo,
    "figshare": _figshare,
    "dataverse": _dataverse,
    "hydroshare": _hydroshare,
    "ckan": _ckan,
    "swh": _swh,
}
