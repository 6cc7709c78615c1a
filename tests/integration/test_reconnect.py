"""A dropped EventSource connection that reconnects with Last-Event-ID re-attaches to its launch."""

from __future__ import annotations

import json

import httpx

from tests.helpers import git_spec, wait_for
from tests.integration.conftest import REQUIREMENTS_REPO, hub_users

SSE = {"Accept": "text/event-stream"}


def read_stream(url: str, headers: dict[str, str], stop_after: int | None = None) -> list[tuple[str, dict]]:
    """(id, event) pairs of one connection; with `stop_after`, hang up after that many events."""
    received: list[tuple[str, dict]] = []
    event_id = ""
    with httpx.stream("GET", url, headers=headers, timeout=600) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                received.append((event_id, json.loads(line[5:])))
                if stop_after is not None and len(received) >= stop_after:
                    break  # the connection drops, as a flaky network drops it
    return received


def test_reconnect_with_last_event_id_resumes_the_same_launch(base_url, git_server, stack):
    git_server.add("reconnecting-repo", REQUIREMENTS_REPO)
    url = f"{base_url}build/git/{git_spec(git_server.url('reconnecting-repo'), 'main')}"
    first = read_stream(url, SSE, stop_after=2)
    assert all(event_id for event_id, _ in first), "every event carries an id"
    rest = read_stream(url, {**SSE, "Last-Event-ID": first[-1][0]})

    ids = [event_id for event_id, _ in first + rest]
    assert len(ids) == len(set(ids)), "no event is sent twice"
    assert len({event_id.split(".")[0] for event_id in ids}) == 1, "one launch"
    assert [int(event_id.split(".")[1]) for event_id in ids] == list(range(len(ids)))
    assert rest[-1][1]["phase"] == "ready", rest[-1]
    assert len([user for user in hub_users(stack) if user["name"].startswith("reconnecting-repo-")]) == 1

    # Reconnecting after the end, having seen everything: 204 tells EventSource to stop.
    done = httpx.get(url, headers={**SSE, "Last-Event-ID": ids[-1]}, timeout=30)
    assert done.status_code == 204


def test_unknown_last_event_id_starts_a_launch_of_its_own(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    url = f"{base_url}build/git/{git_spec(repo_url, 'HEAD')}"
    events = read_stream(url, {**SSE, "Last-Event-ID": "0123456789abcdef.3"})
    assert events[-1][1]["phase"] == "ready"
    assert events[0][0].endswith(".0") and not events[0][0].startswith("0123456789abcdef")


def test_bad_input_still_fails_at_once_without_an_id(base_url):
    response = httpx.get(f"{base_url}build/gh/not-a-spec", headers=SSE, timeout=30)
    assert response.status_code == 200
    assert "id:" not in response.text and '"phase": "failed"' in response.text


def test_a_launch_continues_when_its_only_client_hangs_up(base_url, git_server, stack):
    git_server.add("abandoned-repo", REQUIREMENTS_REPO)
    url = f"{base_url}build/git/{git_spec(git_server.url('abandoned-repo'), 'main')}"
    read_stream(url, SSE, stop_after=1)
    wait_for(
        lambda: any(u["name"].startswith("abandoned-repo-") and u["servers"] for u in hub_users(stack)),
        300,
        "the launch to finish without anyone listening",
    )
