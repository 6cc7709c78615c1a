"""A Kubernetes API server emulator for tests: the pod and event endpoints, on loopback.

It answers with the real API's shapes (Pod, PodList, Event and EventList JSON, Status objects for
404/409/410, chunked newline-delimited watch events, pods/log with follow), so the official
`kubernetes` client, and kubernetes_asyncio under KubeSpawner's reflectors, run against it unchanged.
Tests drive a pod's phase and log through its methods, as a kubelet would, or hand its pods to
`ProcessKubelet`, which runs each pod's container as a local process.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes.client

_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<resource>pods|events)(?:/(?P<name>[^/]+)(?P<log>/log)?)?$")
_KINDS = {"pods": "Pod", "events": "Event"}
# How often a stream that has nothing to send checks whether its client is still there.
CLIENT_CHECK_SECONDS = 0.1
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool, as the API server reads booleans


def _now() -> str:
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


class KubeEmulator:
    """Pods and events by namespace and name, a resourceVersion counter and the history watches replay."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []  # each pod as its creator sent it, before the server fills it in
        # Called, outside the lock, with each pod as created and as deleted (ProcessKubelet's hooks).
        self.on_created: list[Callable[[dict[str, Any]], None]] = []
        self.on_deleted: list[Callable[[dict[str, Any]], None]] = []
        self.logs: dict[tuple[str, str], list[str]] = {}
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []  # (version, resource, type, object)
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

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig whose current context is this emulator (no credentials: it asks for none)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {}}],
            "contexts": [
                {"name": "emulator", "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace}}
            ],
            "current-context": "emulator",
        }
        path.write_text(json.dumps(config))  # JSON is YAML, which kubeconfig loaders read
        return path

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

    def _record(self, kind: str, obj: dict[str, Any], resource: str = "pods") -> None:
        """Bump the version, stamp it on the object, remember the change and wake the watches. Hold `changed`."""
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.history.append((self.version, resource, kind, copy.deepcopy(obj)))
        self.changed.notify_all()

    def add_event(self, pod: dict[str, Any], reason: str, message: str, component: str = "kubelet") -> None:
        """A core/v1 Event about `pod`, as the scheduler or the kubelet reports one."""
        meta = pod["metadata"]
        now = _now()
        name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": None,
            "count": 1,
            "type": "Normal",
            "reportingComponent": component,
            "reportingInstance": "",
        }
        with self.changed:
            self.events[(meta["namespace"], name)] = event
            self._record("ADDED", event, "events")

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
        self,
        name: str,
        phase: str,
        namespace: str = "default",
        *,
        reason: str = "",
        exit_code: int | None = None,
        pod_ip: str | None = None,
    ) -> None:
        """Move a pod to `phase` with container statuses that say so, as the kubelet reports it."""
        with self.changed:
            pod = self.pods[(namespace, name)]
            status: dict[str, Any] = {"phase": phase}
            if pod_ip:
                status.update(podIP=pod_ip, podIPs=[{"ip": pod_ip}], hostIP=pod_ip)
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

    def _store(self, resource: str) -> dict[tuple[str, str], dict[str, Any]]:
        return self.pods if resource == "pods" else self.events

    def _list(self, resource: str, namespace: str, labels: str, fields: str) -> list[dict[str, Any]]:
        """The objects of `resource` in `namespace` the selectors pick, sorted by name. Hold `changed`."""
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self._store(resource).items())
            if ns == namespace and matches(labels, obj["metadata"].get("labels") or {}) and fields_match(fields, obj)
        ]

    def _watch(
        self,
        resource: str,
        namespace: str,
        selectors: tuple[str, str],
        since: int,
        timeout: float,
        connected: Callable[[], bool],
    ) -> Iterator[dict[str, Any]]:
        """Changes after version `since` (or the current objects as ADDED, without one), until `timeout`.

        The lock is never held across a yield: the handler writes each event to a socket.
        """
        labels, fields = selectors

        def selected(res: str, obj: dict[str, Any]) -> bool:
            return (
                res == resource
                and obj["metadata"]["namespace"] == namespace
                and matches(labels, obj["metadata"].get("labels") or {})
                and fields_match(fields, obj)
            )

        deadline = time.monotonic() + timeout
        with self.changed:
            expired = bool(since) and since + 1 < self.history_start
            current = self._list(resource, namespace, labels, fields)
            sent = since or self.version
        if expired:
            yield {"type": "ERROR", "object": status_object(410, "Expired", f"too old resource version: {since}")}
            return
        if not since:
            yield from ({"type": "ADDED", "object": obj} for obj in current)
        while True:
            with self.changed:
                fresh = [
                    (v, kind, copy.deepcopy(obj))
                    for v, res, kind, obj in self.history
                    if v > sent and selected(res, obj)
                ]
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
                pod["metadata"]["deletionTimestamp"] = _now()
                emulator._record("DELETED", pod, resource)
            self._send(200, pod)
            if resource == "pods":
                for hook in emulator.on_deleted:
                    hook(pod)

    return Handler


class ProcessKubelet:
    """A kubelet stand-in: runs the container of each pod the selector picks as a local process.

    The pod's network is loopback: its podIP is 127.0.0.1 and an address of 0.0.0.0 in its
    environment or arguments is bound as 127.0.0.1. The container's image is not pulled: its
    command is looked up on `path` (a virtualenv's bin, say), run with the pod's env only, in a
    fresh working directory that is also its HOME. The pod is Running once the process has
    started, and Succeeded or Failed with its exit code when it ends; deleting the pod kills it.
    A pod is scheduled at once; its container starts once `admit` is set (it is, unless a test
    clears it to look at a pod still Pending).
    """

    def __init__(self, emulator: KubeEmulator, workdir: Path, path: str, selector: str = "") -> None:
        self.emulator = emulator
        self.workdir = workdir
        self.path = path
        self.selector = selector
        self.processes: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.commands: dict[tuple[str, str], list[str]] = {}
        self.admit = threading.Event()
        self.admit.set()
        self._lock = threading.Lock()

    def __enter__(self) -> ProcessKubelet:
        self.emulator.on_created.append(self._run)
        self.emulator.on_deleted.append(self._kill)
        return self

    def __exit__(self, *exc: object) -> None:
        self.admit.set()
        self.emulator.on_created.remove(self._run)
        self.emulator.on_deleted.remove(self._kill)
        with self._lock:
            keys = list(self.processes)
        for namespace, name in keys:
            self._stop((namespace, name))

    def log(self, name: str, namespace: str = "default") -> str:
        """What the pod's process wrote so far."""
        path = self.workdir / f"{namespace}-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if not matches(self.selector, meta.get("labels") or {}):
            return
        self.emulator.add_event(
            pod, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to emulator", "scheduler"
        )
        threading.Thread(target=self._admit_and_start, args=(pod,), name=f"kubelet-{meta['name']}", daemon=True).start()

    def _admit_and_start(self, pod: dict[str, Any]) -> None:
        self.admit.wait()
        try:
            self._start(pod)
        except Exception as error:  # noqa: BLE001 - the pod fails, saying why, as a kubelet's would
            self.emulator.add_event(pod, "Failed", f"Error: {error}")
            self.emulator.set_phase(pod["metadata"]["name"], "Failed", pod["metadata"]["namespace"], reason="Error")

    def _start(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        container = pod["spec"]["containers"][0]
        env = {"PATH": self.path, "LANG": "C.UTF-8"}
        for var in container.get("env") or []:
            if "value" not in var:
                raise ValueError(f"env {var['name']}: the kubelet stand-in resolves only plain values")
            env[var["name"]] = _loopback(var["value"])
        command = [_loopback(arg) for arg in (container.get("command") or []) + (container.get("args") or [])]
        if not command:
            raise ValueError("the container names no command, and the stand-in cannot run an image's own CMD")
        program = shutil.which(command[0], path=self.path)
        if program is None:
            raise FileNotFoundError(f"{command[0]} is not on the kubelet stand-in's path {self.path}")
        if os.geteuid() == 0 and Path(program).name == "jupyterhub-singleuser":
            command.append("--allow-root")  # what the image's non-root user makes unnecessary in a pod
        home = self.workdir / f"{meta['namespace']}-{meta['name']}"
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
        self.emulator.add_event(pod, "Pulled", f'Container image "{container["image"]}" already present on machine')
        with open(home.with_suffix(".log"), "wb") as log:
            process = subprocess.Popen(
                [program, *command[1:]],
                cwd=home,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with self._lock:
            self.processes[key] = process
            self.commands[key] = [program, *command[1:]]
        self.emulator.add_event(pod, "Started", f"Started container {container['name']}")
        self.emulator.set_phase(key[1], "Running", key[0], pod_ip="127.0.0.1")
        threading.Thread(target=self._reap, args=(key, process), name=f"kubelet-{key[1]}", daemon=True).start()

    def _reap(self, key: tuple[str, str], process: subprocess.Popen[bytes]) -> None:
        """When the process ends by itself, its pod ends with its exit code."""
        code = process.wait()
        with self.emulator.changed:
            alive = key in self.emulator.pods and self.processes.get(key) is process
        if alive:
            phase = "Succeeded" if code == 0 else "Failed"
            self.emulator.set_phase(key[1], phase, key[0], exit_code=code, pod_ip="127.0.0.1")

    def _kill(self, pod: dict[str, Any]) -> None:
        self._stop((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def _stop(self, key: tuple[str, str]) -> None:
        with self._lock:
            process = self.processes.pop(key, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def running(self) -> list[str]:
        """Names of the pods whose process is still running."""
        with self._lock:
            return sorted(name for (_, name), process in self.processes.items() if process.poll() is None)


def _loopback(value: str) -> str:
    """An address of 0.0.0.0 (all of the pod's interfaces) is, for a pod on loopback, 127.0.0.1."""
    return value.replace("0.0.0.0", "127.0.0.1")  # noqa: S104 - replacing it, not binding it
