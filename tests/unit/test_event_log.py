"""The launch event log's sinks (stdout, a file, an HTTP endpoint on 127.0.0.1) and its envelope."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

from binder_actors.config import BinderConfig, ConfigError
from binder_actors.events import BinderEvent, failed
from binder_actors.providers import ResolvedRef
from serve_app.event_log import PROVIDER_NAMES, LaunchEventLog, capsule, launch_schema, request_origin

RESOLVED = ResolvedRef(
    provider="gh",
    spec="org/repo/main",
    repo_url="https://github.com/org/repo",
    unresolved_ref="main",
    resolved_ref="a" * 40,
    build_slug="org-repo",
    ref_url="https://github.com/org/repo/tree/" + "a" * 40,
    persistent_spec="org/repo/" + "a" * 40,
)


async def stream(*events: BinderEvent):
    for event in events:
        yield event


def run_launch(log: LaunchEventLog, last: BinderEvent, resolved: list[ResolvedRef]) -> list[BinderEvent]:
    async def follow() -> list[BinderEvent]:
        seen = [
            e
            async for e in log.observed(
                stream(BinderEvent(phase="launching", message="..."), last),
                resolved,
                provider="gh",
                spec="org/repo/main",
                build_token=True,
                origin_of_request="https://x.example",
            )
        ]
        await asyncio.gather(*log._sending)
        return seen

    return asyncio.run(follow())


def test_every_provider_name_is_one_the_schema_allows():
    assert set(PROVIDER_NAMES.values()) == set(launch_schema()["properties"]["provider"]["enum"])


def test_the_envelope_is_binderhubs():
    line = capsule({"spec": "s"}, now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert line == {
        "timestamp": "2026-01-02T03:04:05Z",
        "schema": "binderhub.jupyter.org/launch",
        "version": 6,
        "spec": "s",
    }


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({"origin": "https://a.example", "sec-fetch-site": "cross-site"}, "https://a.example"),
        ({"sec-fetch-site": "same-origin"}, "same-origin"),
        ({}, ""),
    ],
)
def test_request_origin(headers, origin):
    assert request_origin(headers) == origin


def test_a_file_sink_gets_one_valid_line_per_launch(tmp_path):
    path = tmp_path / "events.jsonl"
    log = LaunchEventLog(str(path), "binder.example.org")
    run_launch(log, BinderEvent(phase="ready", message="ok"), [RESOLVED])
    run_launch(log, failed("no", 500), [RESOLVED])
    run_launch(log, failed("bad spec", 400), [])  # never resolved: refused, not launched
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["success", "failure"]
    for line in lines:
        event = {k: v for k, v in line.items() if k not in ("timestamp", "schema", "version")}
        jsonschema.validate(event, launch_schema())
        assert event["provider"] == "GitHub" and event["ref"] == "a" * 40 and event["build_token"] is True


def test_stdout_sink(capsys):
    run_launch(LaunchEventLog("stdout", "h"), BinderEvent(phase="ready", message="ok"), [RESOLVED])
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["status"] == "success"


def test_an_http_sink_gets_each_event_posted_and_a_dead_one_is_only_logged(caplog):
    received: list[dict] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://user:sink-secret@127.0.0.1:{server.server_address[1]}/events"
    try:
        seen = run_launch(LaunchEventLog(url, "h"), BinderEvent(phase="ready", message="ok"), [RESOLVED])
        assert [e.phase for e in seen] == ["launching", "ready"]
        assert [event["status"] for event in received] == ["success"]
    finally:
        server.shutdown()
        server.server_close()
    # The sink gone: the launch is not affected, and the log line does not show the URL's password.
    seen = run_launch(LaunchEventLog(url, "h"), BinderEvent(phase="ready", message="ok"), [RESOLVED])
    assert seen[-1].phase == "ready"
    assert "could not send a launch event" in caplog.text and "sink-secret" not in caplog.text


def test_nothing_is_written_without_a_sink(tmp_path):
    log = LaunchEventLog("", "h")
    assert not log.enabled
    run_launch(log, BinderEvent(phase="ready", message="ok"), [RESOLVED])


@pytest.mark.parametrize("value", ["events.jsonl", "ftp://x/y", "syslog"])
def test_a_sink_that_is_none_of_the_kinds_is_refused_naming_the_setting(value):
    with pytest.raises(ConfigError, match="BINDER_EVENT_LOG"):
        BinderConfig(event_log=value)
