"""Local stand-ins for the public hosts resolution talks to, answering with their APIs' shapes.

One HTTP server on 127.0.0.1 plays GitHub's REST API, GitLab's API v4, doi.org and the Zenodo,
Figshare, Dataverse, HydroShare, CKAN and Software Heritage endpoints a resolution reads, and
serves the git repositories under its root over smart HTTP (`git http-backend`), as github.com
does. The `add_*` methods publish a record's files (built by the test) as each upstream's API lists
and serves them. Tests fill its tables and read its request log; nothing here knows about
binder-actors' code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from serve_app.embedded import free_port
from tests.helpers import make_repo


@dataclass
class UpstreamTables:
    github_refs: dict[str, dict[str, str]] = field(default_factory=dict)  # "user/repo" -> ref -> sha
    gists: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"public": bool, "versions": [...]}
    gitlab_refs: dict[str, dict[str, str]] = field(default_factory=dict)  # "group/project" -> ref -> sha
    dois: dict[str, str] = field(default_factory=dict)  # doi -> landing path or absolute URL
    dataverse: dict[str, dict[str, Any]] = field(default_factory=dict)  # "doi:..." -> dataset "data"
    hydroshare_modified: dict[str, str] = field(default_factory=dict)  # resource id -> modified date
    ckan_modified: dict[str, str] = field(default_factory=dict)  # dataset id -> metadata_modified
    ckan_activities: dict[str, str] = field(default_factory=dict)  # activity id -> timestamp
    swh: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<kind>/<hash>" -> API document
    documents: dict[str, Any] = field(default_factory=dict)  # path (and ?query) -> JSON of a content API
    blobs: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (file, its content type)
    preparing: Counter[str] = field(default_factory=Counter)  # path -> answers "being prepared" (a page) left
    github_rate_limited: bool = False
    github_delay: threading.Event | None = None  # when set, GitHub answers wait until it is set


class UpstreamServer:
    def __init__(self, git_root: Path | None = None) -> None:
        self.git_root = git_root
        self.tables = UpstreamTables()
        self.requests: Counter[str] = Counter()  # "METHOD path" -> count
        self.statuses: Counter[int] = Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_github_repo(self, name: str, files: dict[str, str]) -> str:
        """A real repository `user/repo`, clonable at `<url>/user/repo` and known to the commits API."""
        assert self.git_root is not None, "UpstreamServer(git_root=...) serves repositories"
        sha = make_repo(self.git_root, name, files)
        self.tables.github_refs[name] = {"HEAD": sha, "main": sha}
        return sha

    def count(self, prefix: str) -> int:
        return sum(n for key, n in self.requests.items() if key.split(" ", 1)[1].startswith(prefix))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                if self.path.startswith("/api/1/vault/"):  # Software Heritage's vault: cooking is instant here
                    self.do_GET()
                    return
                self._git()

            def do_GET(self) -> None:
                if "/info/refs" in self.path or self.path.endswith("/git-upload-pack"):
                    self._git()
                    return
                parts = urlsplit(self.path)
                upstream.requests[f"GET {parts.path}"] += 1
                upstream.headers_seen.append(dict(self.headers.items()))
                status, headers, body = upstream.answer(parts.path, parse_qs(parts.query), dict(self.headers.items()))
                upstream.statuses[status] += 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                payload = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _git(self) -> None:
                parts = urlsplit(self.path)
                upstream.requests[f"{self.command} {parts.path}"] += 1
                length = int(self.headers.get("Content-Length") or 0)
                status, headers, body = upstream.git_http(
                    self.command, parts.path, parts.query, self.headers.get("Content-Type", ""), self.rfile.read(length)
                )
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def git_http(self, method: str, path: str, query: str, content_type: str, body: bytes) -> tuple[int, list, bytes]:
        """One smart-HTTP request answered by `git http-backend` (a CGI program) over `git_root`."""
        if self.git_root is None:
            return 404, [], b""
        environment = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
        }
        result = subprocess.run(["git", "http-backend"], input=body, env=environment, capture_output=True, timeout=60)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        return status, headers, payload

    # --- the APIs ---------------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, dict, Any]:
        segments = [unquote(s) for s in path.strip("/").split("/")]
        if self.tables.preparing[path] > 0:  # as HydroShare while it zips a bag: a page, not the file
            self.tables.preparing[path] -= 1
            return 200, {"Content-Type": "text/html"}, b"<p>Your download is being prepared.</p>"
        if path in self.tables.blobs:
            data, content_type = self.tables.blobs[path]
            return 200, {"Content-Type": content_type}, data
        keyed = path + ("?" + "&".join(f"{k}={v[0]}" for k, v in sorted(query.items())) if query else "")
        if keyed in self.tables.documents:
            return 200, {"Content-Type": "application/json"}, self.tables.documents[keyed]
        if segments[:1] == ["repos"] and len(segments) >= 5 and segments[3] == "commits":
            return self._github_commit(f"{segments[1]}/{segments[2]}", "/".join(segments[4:]), headers)
        if segments[:1] == ["gists"] and len(segments) == 2:
            return self._gist(segments[1])
        if path.startswith("/api/v4/projects/"):
            return self._gitlab(path)
        if segments[:1] == ["doi"]:
            landing = self.tables.dois.get("/".join(segments[1:]))
            if landing is None:
                return 404, {}, {"message": "DOI not found"}
            return 302, {"Location": landing if "://" in landing else self.url + landing}, None
        if segments[:1] == ["records"] or segments[:1] == ["articles"] or path == "/dataset.xhtml":
            return 200, {}, {"landing": path}
        if path == "/api/datasets/:persistentId":
            data = self.tables.dataverse.get(query.get("persistentId", [""])[0])
            return (200, {}, {"status": "OK", "data": data}) if data else (404, {}, {"status": "ERROR"})
        if segments[:2] == ["hsapi", "resource"] and segments[3:] == ["scimeta", "elements"]:
            modified = self.tables.hydroshare_modified.get(segments[2])
            if modified is None:
                return 404, {}, {"detail": "Not found."}
            dates = [
                {"type": "created", "start_date": "2019-01-01T00:00:00.000000Z"},
                {"type": "modified", "start_date": modified},
            ]
            return 200, {}, {"dates": dates}
        if path.startswith("/ckan/api/3/action/"):
            return self._ckan(segments[-1], query)
        if segments[:2] == ["api", "1"] and len(segments) == 4:
            document = self.tables.swh.get(f"{segments[2]}/{segments[3]}")
            return (200, {}, document) if document else (404, {}, {"exception": "NotFoundExc"})
        return 404, {}, {"message": "Not Found"}

    def _github_commit(self, repo: str, ref: str, headers: dict[str, str]) -> tuple[int, dict, Any]:
        if self.tables.github_delay is not None:
            self.tables.github_delay.wait(30)
        limits = {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59", "x-ratelimit-reset": "0"}
        if self.tables.github_rate_limited:
            limits.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 17 * 60)})
            return 403, limits, {"message": "API rate limit exceeded"}
        sha = self.tables.github_refs.get(repo, {}).get(ref)
        if sha is None:
            status = 422 if repo in self.tables.github_refs else 404
            return status, limits, {"message": "No commit found for SHA: " + ref}
        etag = '"' + hashlib.sha256(sha.encode()).hexdigest()[:16] + '"'
        if headers.get("If-None-Match") == etag:
            return 304, {**limits, "ETag": etag}, None
        return 200, {**limits, "ETag": etag}, {"sha": sha, "commit": {"message": "a commit"}}

    def _gist(self, gist_id: str) -> tuple[int, dict, Any]:
        gist = self.tables.gists.get(gist_id)
        if gist is None:
            return 404, {}, {"message": "Not Found"}
        history = [{"version": version} for version in gist["versions"]]
        return 200, {}, {"id": gist_id, "public": gist["public"], "history": history}

    def _gitlab(self, path: str) -> tuple[int, dict, Any]:
        rest = path.removeprefix("/api/v4/projects/")
        project, found, ref = rest.partition("/repository/commits/")
        sha = self.tables.gitlab_refs.get(unquote(project), {}).get(unquote(ref)) if found else None
        if sha is None:
            return 404, {}, {"message": "404 Commit Not Found"}
        return 200, {}, {"id": sha, "short_id": sha[:8]}

    def _ckan(self, action: str, query: dict[str, list[str]]) -> tuple[int, dict, Any]:
        key = query.get("id", [""])[0]
        if action == "package_show" and key in self.tables.ckan_modified:
            return (
                200,
                {},
                {"success": True, "result": {"name": key, "metadata_modified": self.tables.ckan_modified[key]}},
            )
        if action == "activity_show" and key in self.tables.ckan_activities:
            return 200, {}, {"success": True, "result": {"id": key, "timestamp": self.tables.ckan_activities[key]}}
        return 404, {}, {"success": False, "error": {"message": "Not found", "__type": "Not Found Error"}}

    # --- records: their files, listed and served as each upstream does ----------------------------

    def _blob(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.tables.blobs[path] = (data, content_type)
        return self.url + path

    def add_zenodo_record(self, doi: str, record_id: str, files: dict[str, bytes], *, software: bool = False) -> None:
        """A Zenodo record: the DOI leads to /records/<id>, /api/records/<id> links its files' listing."""
        self.tables.dois[doi] = f"/records/{record_id}"
        api = f"/api/records/{record_id}"
        kind = "software" if software else "dataset"
        self.tables.documents[api] = {"metadata": {"upload_type": kind}, "links": {"files": self.url + api + "/files"}}
        entries = [
            {"key": name, "links": {"content": self._blob(f"{api}/files/{name}/content", data)}}
            for name, data in files.items()
        ]
        self.tables.documents[api + "/files"] = {"entries": entries}

    def add_figshare_article(self, doi: str, article: str, version: int, files: dict[str, bytes]) -> None:
        """A Figshare article version, its files listed by the API under /figshare-api/v2."""
        self.tables.dois[doi] = f"/articles/dataset/name/{article}/{version}"
        listed = [
            {
                "name": name,
                "is_link_only": False,
                "download_url": self._blob(f"/ndownloader/files/{article}-{name}", data),
            }
            for name, data in files.items()
        ]
        listed.append({"name": "elsewhere.html", "is_link_only": True, "download_url": "http://192.0.2.1/nowhere"})
        self.tables.documents[f"/figshare-api/v2/articles/{article}/versions/{version}"] = {"files": listed}

    def add_dataverse_dataset(self, doi: str, dataset_id: int, files: dict[str, bytes]) -> None:
        """A Dataverse dataset at version 1.0; a file's folder is its directoryLabel."""
        self.tables.dois[doi] = f"/dataset.xhtml?persistentId=doi:{doi}"
        authority, identifier = doi.split("/", 1)
        self.tables.dataverse[f"doi:{doi}"] = {
            "id": dataset_id,
            "authority": authority,
            "identifier": identifier,
            "persistentUrl": f"https://doi.org/{doi}",
            "latestVersion": {"versionNumber": 1, "versionMinorNumber": 0},
        }
        listed = []
        for number, (name, data) in enumerate(files.items(), start=dataset_id * 100):
            folder, _, label = name.rpartition("/")
            self._blob(f"/api/access/datafile/{number}", data)
            listed.append(
                {"label": label, "directoryLabel": folder, "dataFile": {"id": number}}
                if folder
                else {"label": label, "dataFile": {"id": number}}
            )
        path = f"/api/datasets/:persistentId/versions/1.0?persistentId=doi:{doi}"
        self.tables.documents[path] = {"status": "OK", "data": {"files": listed}}

    def add_hydroshare_resource(self, resource_id: str, files: dict[str, bytes]) -> None:
        """A HydroShare resource whose bag (a zip) holds the files under <id>/data/contents/."""
        self.tables.hydroshare_modified[resource_id] = "2024-01-02T03:04:05.000000Z"
        bag = {f"{resource_id}/bagit.txt": b"BagIt-Version: 0.96\n"}
        bag.update({f"{resource_id}/data/contents/{name}": data for name, data in files.items()})
        self._blob(f"/django_irods/download/bags/{resource_id}", zip_bytes(bag), "application/zip")

    def add_ckan_dataset(self, dataset_id: str, files: dict[str, bytes]) -> None:
        """A CKAN dataset under /ckan whose resources are the files (and one resource without a file)."""
        self.tables.ckan_modified[dataset_id] = "2024-04-02T02:10:31.123456"
        resources = [
            {"id": f"r{n}", "url": self._blob(f"/ckan/dataset/{dataset_id}/resource/r{n}/download/{name}", data)}
            for n, (name, data) in enumerate(files.items())
        ]
        resources.append({"id": "no-file", "url": ""})
        self.tables.documents[f"/ckan/api/3/action/package_show?id={dataset_id}"] = {
            "success": True,
            "result": {
                "name": dataset_id,
                "metadata_modified": self.tables.ckan_modified[dataset_id],
                "resources": resources,
            },
        }

    def add_swh_directory(self, directory: str, files: dict[str, bytes]) -> None:
        """A Software Heritage directory, cooked by the vault into a tar.gz holding <directory>/..."""
        self.tables.swh[f"directory/{directory}"] = {"entries": []}
        vault = f"/api/1/vault/directory/{directory}/"
        fetch_url = self._blob(
            vault + "raw/", tar_bytes({f"{directory}/{n}": d for n, d in files.items()}), "application/gzip"
        )
        self.tables.documents[vault] = {"status": "done", "fetch_url": fetch_url, "progress_message": None}


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
