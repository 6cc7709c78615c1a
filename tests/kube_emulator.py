"""A Kubernetes API server emulator for tests: the pod endpoints the build executor uses, on loopback.

It answers with the real API's shapes (Pod and PodList JSON, Status objects for 404/409/410, chunked
newline-delimited watch events, pods/log with follow), so the official `kubernetes` client runs
against it unchanged. Tests drive a pod's phase and log through its methods, as a kubelet would.
"""

from __future__ import annotations

import copy
import json
import re
import select
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes.client

_POD_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods(?:/(?P<name>[^/]+)(?P<log>/log)?)?$")
# How often a stream that has nothing to send checks whether its client is still there.
CLIENT_CHECK_SECONDS = 0.1
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool, as the API server reads booleans


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_object(code: int, reason: str, message: str, name: str = "") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": "pods"},
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


class KubeEmulator:
    """Pods by namespace and name, a resourceVersion counter and the event history watches replay."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], list[str]] = {}
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.history_start = 1  # versions before this were compacted: older watches get 410 Gone
        self.version = 0
        self.requests: list[tuple[str, str]] = []
        self.open_streams: dict[str, int] = {}
        self.changed = threading.Condition()
        self.closed = False
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="kube-emulator", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def api_client(self) -> kubernetes.client.ApiClient:
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kubernetes.client.ApiClient(configuration)

    def __enter__(self) -> KubeEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # The kubelet's and the test's side.

    def _record(self, kind: str, pod: dict[str, Any]) -> None:
        """Bump the version, stamp it on the pod, remember the event and wake the watches. Hold `changed`."""
        self.version += 1
        pod["metadata"]["resourceVersion"] = str(self.version)
        self.history.append((self.version, kind, copy.deepcopy(pod)))
        self.changed.notify_all()

    def add_pod(
        self, pod: dict[str, Any], namespace: str = "default", created: datetime | None = None
    ) -> dict[str, Any]:
        """Store a pod as if the API server had accepted it; returns the stored object."""
        pod = copy.deepcopy(pod)
        meta = pod.setdefault("metadata", {})
        meta.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=(created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else _now()),
        )
        pod.setdefault("status", {"phase": "Pending"})
        with self.changed:
            self.pods[(namespace, meta["name"])] = pod
            self.logs[(namespace, meta["name"])] = []
            self._record("ADDED", pod)
            return copy.deepcopy(pod)

    def set_phase(
        self, name: str, phase: str, namespace: str = "default", *, reason: str = "", exit_code: int | None = None
    ) -> None:
        """Move a pod to `phase` with container statuses that say so, as the kubelet reports it."""
        with self.changed:
            pod = self.pods[(namespace, name)]
            status: dict[str, Any] = {"phase": phase}
            if phase == "Pending":
                state: dict[str, Any] = {"waiting": {"reason": reason or "ContainerCreating"}}
            elif phase == "Running":
                state = {"running": {"startedAt": _now()}}
            else:
                code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
                state = {"terminated": {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error")}}
                if reason == "DeadlineExceeded":
                    status["reason"] = reason
                    state = {"terminated": {"exitCode": 137, "reason": "Error"}}
            containers = (pod.get("spec") or {}).get("containers") or [{"name": "builder", "image": "unknown"}]
            status["containerStatuses"] = [
                {
                    "name": containers[0]["name"],
                    "image": containers[0].get("image", ""),
                    "imageID": "",
                    "ready": phase == "Running",
                    "restartCount": 0,
                    "state": state,
                }
            ]
            pod["status"] = status
            self._record("MODIFIED", pod)

    def log(self, name: str, *lines: str, namespace: str = "default") -> None:
        with self.changed:
            self.logs[(namespace, name)].extend(lines)
            self.changed.notify_all()

    def compact(self) -> None:
        """Forget the event history, as etcd compaction does; watches from older versions get 410 Gone."""
        with self.changed:
            self.history.clear()
            self.history_start = self.version + 1

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self.changed:
            found = self.pods.get((namespace, name))
            return copy.deepcopy(found) if found else None

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once `condition()` holds (checked on every change), else fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("condition not met within the deadline")
                self.changed.wait(left)

    def streams(self, name: str) -> int:
        """How many watches or followed logs of pod `name` are open right now."""
        with self.changed:
            return self.open_streams.get(name, 0)

    # The API server's side, called by the handler.

    def _watch(
        self, namespace: str, selector: str, since: int, timeout: float, connected: Callable[[], bool]
    ) -> Iterator[dict[str, Any]]:
        """Events after version `since` (or the current pods as ADDED, without one), until `timeout`.

        The lock is never held across a yield: the handler writes each event to a socket.
        """

        def selected(pod: dict[str, Any]) -> bool:
            return pod["metadata"]["namespace"] == namespace and matches(selector, pod["metadata"].get("labels") or {})

        deadline = time.monotonic() + timeout
        with self.changed:
            expired = bool(since) and since + 1 < self.history_start
            current = [copy.deepcopy(pod) for pod in self.pods.values() if selected(pod)]
            sent = since or self.version
        if expired:
            yield {"type": "ERROR", "object": status_object(410, "Expired", f"too old resource version: {since}")}
            return
        if not since:
            yield from ({"type": "ADDED", "object": pod} for pod in current)
        while True:
            with self.changed:
                fresh = [(v, kind, copy.deepcopy(pod)) for v, kind, pod in self.history if v > sent and selected(pod)]
                sent = max(sent, self.version)
                if not fresh:
                    left = deadline - time.monotonic()
                    if self.closed or left <= 0 or not connected():
                        return
                    # Woken by a change, or soon enough to notice a client that went away.
                    self.changed.wait(min(left, CLIENT_CHECK_SECONDS))
                    continue
            yield from ({"type": kind, "object": pod} for _, kind, pod in fresh)

    def _follow_log(self, namespace: str, name: str, follow: bool, connected: Callable[[], bool]) -> Iterator[str]:
        """The container's log so far, then, with `follow`, each new line until the container ends."""
        sent = 0
        while True:
            with self.changed:
                lines = self.logs.get((namespace, name), [])[sent:]
                pod = self.pods.get((namespace, name))
                ended = not follow or pod is None or self.closed or pod["status"]["phase"] in ("Succeeded", "Failed")
                if not lines and not ended:
                    if not connected():
                        return
                    self.changed.wait(CLIENT_CHECK_SECONDS)
                    continue
            sent += len(lines)
            yield from lines
            if ended:
                return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that close a stream (a cancelled watch) are normal; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(emulator: KubeEmulator) -> type[BaseHTTPRequestHandler]:
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

        def _route(self) -> tuple[str, str | None, bool, dict[str, str]] | None:
            parts = urlsplit(self.path)
            emulator.requests.append((self.command, parts.path))
            match = _POD_PATH.match(parts.path)
            if not match:
                self._send(404, status_object(404, "NotFound", f"the server could not find {parts.path}"))
                return None
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            return match["ns"], match["name"], bool(match["log"]), query

        def _missing(self, name: str) -> None:
            self._send(404, status_object(404, "NotFound", f'pods "{name}" not found', name))

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            route = self._route()
            if route is None:
                return
            namespace, name, is_log, query = route
            if name is None:
                selector = query.get("labelSelector", "")
                if query.get("watch") in _TRUE:
                    since = int(query.get("resourceVersion") or 0)
                    timeout = float(query.get("timeoutSeconds", 1800))
                    events = emulator._watch(namespace, selector, since, timeout, self._connected)
                    self._counted(selector, (json.dumps(event) + "\n" for event in events), "application/json")
                    return
                with emulator.changed:
                    items = [
                        copy.deepcopy(pod)
                        for (ns, _), pod in sorted(emulator.pods.items())
                        if ns == namespace and matches(selector, pod["metadata"].get("labels") or {})
                    ]
                    version = str(emulator.version)
                self._send(
                    200,
                    {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": version}, "items": items},
                )
                return
            pod = emulator.pod(name, namespace)
            if pod is None:
                self._missing(name)
                return
            if not is_log:
                self._send(200, pod)
                return
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
            namespace, _, _, _ = route
            pod = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name = pod["metadata"]["name"]
            with emulator.changed:
                if (namespace, name) in emulator.pods:
                    self._send(409, status_object(409, "AlreadyExists", f'pods "{name}" already exists', name))
                    return
            self._send(201, emulator.add_pod(pod, namespace))

        def do_DELETE(self) -> None:  # noqa: N802
            route = self._route()
            if route is None:
                return
            namespace, name, _, _ = route
            if self.headers.get("Content-Length"):
                self.rfile.read(int(self.headers["Content-Length"]))  # DeleteOptions; deletion here is immediate
            with emulator.changed:
                pod = emulator.pods.pop((namespace, name or ""), None)
                if pod is None:
                    self._missing(name or "")
                    return
                pod["metadata"]["deletionTimestamp"] = _now()
                emulator._record("DELETED", pod)
            self._send(200, pod)

    return Handler
