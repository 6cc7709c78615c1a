"""A dropped EventSource connection that reconnects with Last-Event-ID re-attaches to its launch."""

from __future__ import annotations

import asyncio
import json
import secrets

import httpx
import ray

from binder_actors.events import BinderEvent
from binder_actors.launch import launch_events
from binder_actors.models import LaunchRequest, ResolveRequest
from binder_actors.names import launch_key, user_name_for_repo
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


def test_a_launch_id_this_replica_never_gave_out_runs_the_launch_under_it(base_url, requirements_repo, stack):
    """As after a reconnect that reached another (or a restarted) replica: same launch id, one session."""
    repo_url, _ = requirements_repo
    url = f"{base_url}build/git/{git_spec(repo_url, 'HEAD')}"
    launch_id = secrets.token_hex(8)
    events = read_stream(url, {**SSE, "Last-Event-ID": f"{launch_id}.3"})
    assert events[-1][1]["phase"] == "ready"
    assert [event_id for event_id, _ in events] == [f"{launch_id}.{n}" for n in range(4, 4 + len(events))]
    user = events[-1][1]["url"].rstrip("/").rsplit("/", 1)[-1]
    assert user == user_name_for_repo(repo_url, launch_id)


def test_the_same_launch_id_from_two_replicas_starts_one_server(actors, requirements_repo, stack):
    """Two flows with one launch id (two replicas, or one and its replacement): one user, one server."""
    repo_url, _ = requirements_repo
    launch_id = secrets.token_hex(8)

    spec = git_spec(repo_url, "main")

    async def one() -> BinderEvent:
        events = [e async for e in launch_events(actors, "git", spec, launch_id=launch_id)]
        return events[-1]

    async def both() -> list[BinderEvent]:
        return list(await asyncio.gather(one(), one()))

    first, second = asyncio.run(both())
    assert first.phase == second.phase == "ready", (first, second)
    assert first.url == second.url and first.token == second.token
    # Asked again after it was delivered (a late reconnect): the same session again, from the hub.
    again = asyncio.run(one())
    assert (again.phase, again.url, again.token) == ("ready", first.url, first.token)
    user = user_name_for_repo(repo_url, launch_id)
    assert [u["name"] for u in hub_users(stack) if u["name"] == user] == [user]

    # The user name is public (it is in the session URL): a request for that user with any other
    # launch key gets neither the session nor its token, and the session is left alone.
    async def as_someone_else() -> list[BinderEvent]:
        request = LaunchRequest(
            image=first.image,
            resolved=ray.get(actors.ref_resolver.resolve.remote(ResolveRequest(provider="git", spec=spec))),
            binder_request="",
            binder_persistent_request="",
            user=user,
            launch_key=launch_key(secrets.token_hex(8)),
        )
        return [await ref async for ref in actors.session_manager.launch.remote(request)]

    refused = asyncio.run(as_someone_else())
    assert [(e.phase, e.status_code) for e in refused] == [("failed", 409)], refused
    assert first.token not in str(refused)
    again = asyncio.run(one())
    assert (again.phase, again.url, again.token) == ("ready", first.url, first.token)
    ray.get(actors.session_manager.stop.remote(user))


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
