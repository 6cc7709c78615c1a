"""A Kubernetes API server emulator for tests: the pod and event endpoints, on loopback.

It answers with the real API's shapes (Pod, PodList, Event and EventList JSON, Status objects for
404/409/410, chunked newline-delimited watch events, pods/log with follow), so the official
`kubernetes` client, and kubernetes_asyncio under KubeSpawner's reflectors, run against it unchanged.
Tests drive a pod's phase and log through its methods, as a kubelet would, or hand its pods to
`tests.kubelet.ProcessKubelet`, which runs each pod's container as a local process.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes.client

from tests.kube_api import (
    CLIENT_CHECK_SECONDS,
    ApiHTTPServer,
    api_handler,
    fields_match,
    kube_timestamp,
    matches,
    status_object,
)


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
        self._server = ApiHTTPServer(("127.0.0.1", 0), api_handler(self))
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
        now = kube_timestamp()
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
            creationTimestamp=(created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else kube_timestamp()),
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
                state = {"running": {"startedAt": kube_timestamp()}}
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
