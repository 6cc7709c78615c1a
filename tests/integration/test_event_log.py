"""BinderHub's launch events: one line per launch, valid against the schema, success and failure alike.

The session's stack writes them to a file (BINDER_EVENT_LOG); the lines are read as mybinder.org's
events archive would be, and each event is checked against serve_app/event_schemas/launch.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema

from serve_app.event_log import launch_schema
from tests.conftest import REQUIREMENTS_REPO
from tests.helpers import git_spec, read_events

ENVELOPE = {"timestamp", "schema", "version"}


def events_for(stack, spec: str) -> list[dict]:
    lines = Path(stack.config.event_log).read_text().splitlines() if Path(stack.config.event_log).exists() else []
    return [event for event in map(json.loads, lines) if event["spec"] == spec]


def check(line: dict) -> None:
    assert line["schema"] == "binderhub.jupyter.org/launch" and line["version"] == 6
    assert line["timestamp"].endswith("Z")
    jsonschema.validate({k: v for k, v in line.items() if k not in ENVELOPE}, launch_schema())


def test_a_launch_and_a_failed_one_are_logged_as_binderhub_logs_them(base_url, git_server, stack):
    sha = git_server.add("logged", REQUIREMENTS_REPO)
    spec = git_spec(git_server.url("logged"), "main")
    ready = read_events(base_url, f"build/git/{spec}", headers={"Origin": "https://textbook.example.org"})[-1]
    assert ready["phase"] == "ready", ready
    (line,) = events_for(stack, spec)
    check(line)
    port = stack.config.port
    assert {k: v for k, v in line.items() if k not in ENVELOPE} == {
        "provider": "Git",
        "spec": spec,
        "ref": sha,
        "status": "success",
        "build_token": False,
        "origin": f"127.0.0.1:{port}",
        "request_origin": "https://textbook.example.org",
    }

    git_server.add("logged-broken", {"requirements.txt": "no-such-package-binder-actors==0.0.1\n"})
    broken = git_spec(git_server.url("logged-broken"), "main")
    failed = read_events(base_url, f"build/git/{broken}", headers={"Sec-Fetch-Site": "cross-site"})[-1]
    assert failed["phase"] == "failed", failed
    (line,) = events_for(stack, broken)
    check(line)
    assert (line["status"], line["request_origin"]) == ("failure", "cross-site")


def test_what_is_not_a_launch_is_not_logged(base_url, git_server, stack):
    git_server.add("not-logged", REQUIREMENTS_REPO)
    spec = git_spec(git_server.url("not-logged"), "main")
    # Refused before anything ran (build_only outside API-only mode), and a ref that never resolved.
    assert read_events(base_url, f"build/git/{spec}?build_only=true")[-1]["phase"] == "failed"
    missing = git_spec(git_server.url("not-logged"), "no-such-branch")
    assert read_events(base_url, f"build/git/{missing}")[-1]["phase"] == "failed"
    assert events_for(stack, spec) == [] and events_for(stack, missing) == []
    for line in map(json.loads, Path(stack.config.event_log).read_text().splitlines()):
        check(line)  # every line the session wrote so far


def test_health_and_versions_answer_head_without_a_body(base_url):
    for path in ("health", "versions"):
        answer = httpx.head(base_url + path, timeout=30)
        assert answer.status_code in (200, 503) and answer.content == b"", (path, answer.status_code)
        assert answer.status_code == httpx.get(base_url + path, timeout=30).status_code
