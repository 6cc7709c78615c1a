"""BinderHub's launch event log: one `binderhub.jupyter.org/launch` event per launch, as JSON lines.

Written where BINDER_EVENT_LOG says: `stdout`, a file (a path, or file:///path) or an HTTP sink (an
http(s) URL each event is POSTed to). The line is BinderHub's: `timestamp`, `schema` and `version`,
then the event's fields, so what reads mybinder.org's events archive reads ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from binder_actors.events import BinderEvent
from binder_actors.providers import ResolvedRef
from serve_app.metrics import PROVIDER_NAMES as METRIC_PROVIDER_NAMES

log = logging.getLogger(__name__)

SCHEMA_FILE = Path(__file__).parent / "event_schemas" / "launch.json"
# BinderHub's provider names, by our prefix (as its metrics label them); `swh` takes the name
# BinderHub's launch schema 5 gave Software Heritage.
PROVIDER_NAMES = {**METRIC_PROVIDER_NAMES, "swh": "SWHID"}
HTTP_SINK_TIMEOUT = 10.0


@cache
def launch_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def request_origin(headers: Mapping[str, str]) -> str:
    """BinderHub's request_origin: the Origin header, else Sec-Fetch-Site, else ''."""
    return headers.get("origin") or headers.get("sec-fetch-site") or ""


def capsule(event: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The line written for `event`: BinderHub's envelope (timestamp, schema, version), then the event."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    schema = launch_schema()
    return {"timestamp": moment.isoformat() + "Z", "schema": schema["$id"], "version": schema["version"], **event}


class LaunchEventLog:
    """Where this replica writes launch events; nothing is written when BINDER_EVENT_LOG is empty."""

    def __init__(self, sink: str, origin: str) -> None:
        self.sink = sink.strip()
        self.origin = origin
        self._http: httpx.AsyncClient | None = None
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self.sink)

    async def observed(
        self,
        events: AsyncIterator[BinderEvent],
        resolved: list[ResolvedRef],
        *,
        provider: str,
        spec: str,
        build_token: bool,
        origin_of_request: str,
    ) -> AsyncIterator[BinderEvent]:
        """`events` passed on; as the launch ends (ready, or failed once its ref was resolved), its event.

        `resolved` is filled by the launch flow when RefResolver answers: a spec that never resolved
        was refused, not launched, as BinderHub writes no event for it either.
        """
        async for event in events:
            yield event
            if event.phase in ("ready", "failed") and resolved:
                self.emit(
                    {
                        "provider": PROVIDER_NAMES.get(provider, provider),
                        "spec": spec,
                        "ref": resolved[0].resolved_ref,
                        "status": "success" if event.phase == "ready" else "failure",
                        "build_token": build_token,
                        "origin": self.origin,
                        "request_origin": origin_of_request,
                    }
                )

    def emit(self, event: dict[str, Any]) -> None:
        """Write one event; a sink that fails is logged, never the launch's failure."""
        if not self.enabled:
            return
        line = json.dumps(capsule(event))
        try:
            if self.sink == "stdout":
                print(line, file=sys.stdout, flush=True)
            elif self.sink.startswith(("http://", "https://")):
                task = asyncio.get_running_loop().create_task(self._post(line))
                self._sending.add(task)  # held until sent: the launch does not wait for the sink
                task.add_done_callback(self._sending.discard)
            else:
                path = Path(self.sink.removeprefix("file://"))
                with path.open("a") as out:  # one write of one line: appends from replicas do not interleave
                    out.write(line + "\n")
        except OSError as error:
            log.warning("could not write a launch event to %s: %s", self.sink, error)

    async def _post(self, line: str) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=HTTP_SINK_TIMEOUT)
        try:
            answer = await self._http.post(self.sink, content=line, headers={"Content-Type": "application/json"})
            if answer.status_code >= 400:
                log.warning("the event sink at %s answered %d", self._sink_host, answer.status_code)
        except httpx.HTTPError as error:
            log.warning("could not send a launch event to %s: %s", self._sink_host, type(error).__name__)

    @property
    def _sink_host(self) -> str:
        """The HTTP sink's host alone: its URL may carry credentials, which no log line shows."""
        return httpx.URL(self.sink).host
