"""The Kubernetes API's HTTP side for the test emulator: paths, Status objects, selectors, and the
request handler that serves a `KubeEmulator`'s pods and events as the real API server does."""

from __future__ import annotations

import copy
import json
import re
import select
import socket
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from tests.kube_emulator import KubeEmulator

_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<resource>pods|events)(?:/(?P<name>[^/]+)(?P<log>/log)?)?$")
_KINDS = {"pods": "Pod", "events": "Event"}
# How often a stream that has nothing to send checks whether its client is still there.
CLIENT_CHECK_SECONDS = 0.1
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool, as the API server reads booleans


def kube_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_object(code: int, reason: str, message: str, name: str = "", kind: str = "pods") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": kind},
        "code": code,
    }


def matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selectors: `a=b`, `a==b`, `a!=b`, comma-separated (all must hold)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        else:
            key, value = re.split("==?", term, maxsplit=1)
            if labels.get(key.strip()) != value.strip():
                return False
    return True


def fields_match(selector: str, obj: dict[str, Any]) -> bool:
    """Equality field selectors on dotted paths (`involvedObject.kind=Pod`, `metadata.name!=x`)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negated = "!=" in term
        path, value = re.split("!=|==?", term, maxsplit=1)
        found: Any = obj
        for key in path.strip().split("."):
            found = found.get(key) if isinstance(found, dict) else None
        if (str(found) == value.strip()) == negated:
            return False
    return True


class ApiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that close a stream (a cancelled watch) are normal; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def api_handler(emulator: KubeEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked streams, as the API server sends watches and followed logs

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Quiet: the tests read `emulator.requests` instead."""

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, content_type: str, chunks: Iterator[str]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in chunks:
                    data = chunk.encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away, as a cancelled watch does

        def _connected(self) -> bool:
            """False once the client closed its end (a cancelled watch), as the API server notices."""
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return True
            try:
                return self.connection.recv(1, socket.MSG_PEEK) != b""
            except OSError:
                return False

        def _route(self) -> tuple[str, str, str | None, bool, dict[str, str]] | None:
            parts = urlsplit(self.path)
            emulator.requests.append((self.command, parts.path))
            match = _PATH.match(parts.path)
            if not match:
                self._send(404, status_object(404, "NotFound", f"the server could not find {parts.path}"))
                return None
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            return match["resource"], match["ns"], match["name"], bool(match["log"]), query

        def _missing(self, name: str, resource: str = "pods") -> None:
            self._send(404, status_object(404, "NotFound", f'{resource} "{name}" not found', name, resource))

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            route = self._route()
            if route is None:
                return
            resource, namespace, name, is_log, query = route
            if name is None:
                selectors = query.get("labelSelector", ""), query.get("fieldSelector", "")
                if query.get("watch") in _TRUE:
                    since = int(query.get("resourceVersion") or 0)
                    timeout = float(query.get("timeoutSeconds", 1800))
                    events = emulator._watch(resource, namespace, selectors, since, timeout, self._connected)
                    self._counted(selectors[0], (json.dumps(event) + "\n" for event in events), "application/json")
                    return
                with emulator.changed:
                    items = emulator._list(resource, namespace, *selectors)
                    version = str(emulator.version)
                kind = _KINDS[resource]
                self._send(
                    200,
                    {
                        "kind": f"{kind}List",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": version},
                        "items": items,
                    },
                )
                return
            with emulator.changed:
                found = emulator._store(resource).get((namespace, name))
                obj = copy.deepcopy(found) if found else None
            if obj is None:
                self._missing(name, resource)
                return
            if not is_log:
                self._send(200, obj)
                return
            pod = obj
            waiting = [
                status["state"]["waiting"]["reason"]
                for status in pod["status"].get("containerStatuses", [])
                if "waiting" in status["state"]
            ]
            if pod["status"]["phase"] == "Pending":
                reason = waiting[0] if waiting else "ContainerCreating"
                message = f'container "builder" in pod "{name}" is waiting to start: {reason}'
                self._send(400, status_object(400, "BadRequest", message, name))
                return
            lines = emulator._follow_log(namespace, name, query.get("follow") in _TRUE, self._connected)
            self._counted(f"name={name}", (line + "\n" for line in lines), "text/plain")

        def _counted(self, selector: str, chunks: Iterator[str], content_type: str) -> None:
            key = selector.rsplit("name=", 1)[-1]
            with emulator.changed:
                emulator.open_streams[key] = emulator.open_streams.get(key, 0) + 1
                emulator.changed.notify_all()
            try:
                self._stream(content_type, chunks)
            finally:
                with emulator.changed:
                    emulator.open_streams[key] -= 1
                    emulator.changed.notify_all()

        def do_POST(self) -> None:  # noqa: N802
            route = self._route()
            if route is None:
                return
            resource, namespace, _, _, _ = route
            if resource != "pods":
                self._send(405, status_object(405, "MethodNotAllowed", f"the emulator does not create {resource}"))
                return
            pod = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            emulator.created.append(copy.deepcopy(pod))
            name = pod["metadata"]["name"]
            with emulator.changed:
                if (namespace, name) in emulator.pods:
                    self._send(409, status_object(409, "AlreadyExists", f'pods "{name}" already exists', name))
                    return
            created = emulator.add_pod(pod, namespace)
            self._send(201, created)
            for hook in emulator.on_created:
                hook(created)

        def do_DELETE(self) -> None:  # noqa: N802
            route = self._route()
            if route is None:
                return
            resource, namespace, name, _, _ = route
            if self.headers.get("Content-Length"):
                self.rfile.read(int(self.headers["Content-Length"]))  # DeleteOptions; deletion here is immediate
            with emulator.changed:
                pod = emulator._store(resource).pop((namespace, name or ""), None)
                if pod is None:
                    self._missing(name or "", resource)
                    return
                pod["metadata"]["deletionTimestamp"] = kube_timestamp()
                emulator._record("DELETED", pod, resource)
            self._send(200, pod)
            if resource == "pods":
                for hook in emulator.on_deleted:
                    hook(pod)

    return Handler
