"""Sessions through the real JupyterHub: the spawner contract, quotas, timeouts, culling, restarts."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import pytest
import ray

from binder_actors.actors.session_manager import SessionManager
from binder_actors.config import BinderConfig
from binder_actors.hub import HubClient
from binder_actors.hub_models import MANAGED_GROUP
from binder_actors.models import LaunchRequest, ResolveRequest
from binder_actors.names import image_name
from serve_app.embedded import start_hub
from tests.helpers import git_spec, read_events, run_in_kernel, wait_for
from tests.integration.conftest import hub_users


def user_of(ready: dict) -> str:
    return ready["url"].rstrip("/").rsplit("/", 1)[-1]


def hub_api(stack) -> httpx.Client:
    token = stack.config.hub_api_token.get_secret_value()
    return httpx.Client(
        base_url=stack.config.hub_url + "hub/api/", headers={"Authorization": f"token {token}"}, timeout=30
    )


@pytest.fixture(scope="module")
def built_launch(actors, base_url, requirements_repo) -> LaunchRequest:
    """A LaunchRequest for the requirements repository, its image built."""
    repo_url, _ = requirements_repo
    spec = git_spec(repo_url, "main")
    assert read_events(base_url, f"build/git/{spec}")[-1]["phase"] == "ready"
    resolved = ray.get(actors.ref_resolver.resolve.remote(ResolveRequest(provider="git", spec=spec)))
    return LaunchRequest(
        image=image_name("", resolved.build_slug, resolved.resolved_ref),
        resolved=resolved,
        binder_request=f"v2/git/{spec}",
        binder_persistent_request=f"v2/git/{resolved.persistent_spec}",
    )


@pytest.fixture
def private_manager(stack) -> Iterator:
    """A SessionManager of its own against the same hub, with other settings; its sessions are stopped."""
    created = []

    def make(**settings):
        handle = ray.remote(SessionManager).options(num_cpus=0).remote(stack.config.with_settings(**settings))
        created.append(handle)
        return handle

    yield make
    for handle in created:
        for session in ray.get(handle.list_sessions.remote()):
            ray.get(handle.stop.remote(session.user))
        ray.kill(handle)


async def launch_all(manager, request: LaunchRequest, count: int) -> list[list]:
    async def one() -> list:
        return [await ref async for ref in manager.launch.remote(request)]

    return await asyncio.gather(*(one() for _ in range(count)))


def test_spawner_refuses_user_options_without_token(stack):
    with hub_api(stack) as api:
        assert api.post("users/no-token-user").status_code == 201
        try:
            answer = api.post("users/no-token-user/server", json={"image": "x:y"})
            assert answer.status_code == 400
            assert "user_options must include token" in answer.json()["message"]
        finally:
            api.delete("users/no-token-user")


def test_server_gets_binder_fields_and_in_session_culling(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    ready = read_events(base_url, f"build/git/{git_spec(repo_url, 'main')}")[-1]
    code = (
        "import os; e = os.environ; print(e['BINDER_REPO_URL'], e['BINDER_REQUEST'], e['BINDER_LAUNCH_HOST']);"
        "print(open(f'/proc/{os.getppid()}/cmdline').read().replace(chr(0), ' '))"
    )
    first, cmdline = run_in_kernel(ready["url"], ready["token"], code).splitlines()
    assert first == f"{repo_url} {ready['binder_request']} {base_url}"
    assert "--ServerApp.shutdown_no_activity_timeout=600" in cmdline
    assert "--MappingKernelManager.cull_idle_timeout=600" in cmdline


def stop_sessions_of(actors, repo_url: str) -> None:
    for session in ray.get(actors.session_manager.list_sessions.remote()):
        if session.repo_url == repo_url:
            ray.get(actors.session_manager.stop.remote(session.user))


def test_fifty_simultaneous_launches_against_a_quota_of_five_start_five(private_manager, built_launch, actors):
    stop_sessions_of(actors, built_launch.resolved.repo_url)  # the quota counts running sessions too
    manager = private_manager(per_repo_quota=5)
    results = asyncio.run(launch_all(manager, built_launch, 50))
    outcomes = [r[-1] for r in results]
    assert sum(e.phase == "ready" for e in outcomes) == 5
    refused = [e for e in outcomes if e.phase == "failed"]
    assert len(refused) == 45
    assert {e.message for e in refused} == {
        f"Too many users running {built_launch.resolved.repo_url}! Try again soon.\n"
    }
    assert {e.status_code for e in refused} == {429}
    assert len(ray.get(manager.list_sessions.remote())) >= 5


def test_total_quota_and_maintenance_messages(private_manager, built_launch):
    maintenance = private_manager(max_sessions=0)
    event = asyncio.run(launch_all(maintenance, built_launch, 1))[0][-1]
    assert event.phase == "failed" and "maintenance" in event.message
    full = private_manager(max_sessions=1)
    outcomes = [r[-1] for r in asyncio.run(launch_all(full, built_launch, 3))]
    assert sum(e.phase == "ready" for e in outcomes) <= 1
    assert "Too many users on this BinderHub! Try again soon.\n" in {e.message for e in outcomes}


def test_launch_timeout_fails_and_removes_the_user(private_manager, built_launch, stack):
    manager = private_manager(launch_timeout=0.05)
    before = {u["name"] for u in hub_users(stack)}
    event = asyncio.run(launch_all(manager, built_launch, 1))[0][-1]
    assert event.phase == "failed"
    assert "BINDER_LAUNCH_TIMEOUT=0.05s" in event.message
    wait_for(lambda: {u["name"] for u in hub_users(stack)} <= before, 60, "the timed-out user to be removed")


def test_server_dying_at_start_fails_with_its_log_tail(base_url, git_server, stack):
    start = "#!/bin/bash\necho 'this start script is broken on purpose'\nexit 3\n"
    git_server.add("dies-at-start", {"requirements.txt": "", "start": start})
    before = {u["name"] for u in hub_users(stack)}
    event = read_events(base_url, f"build/git/{git_spec(git_server.url('dies-at-start'), 'main')}")[-1]
    assert event["phase"] == "failed"
    assert "exited with status 3" in event["message"]
    assert "this start script is broken on purpose" in event["message"]
    assert {u["name"] for u in hub_users(stack)} <= before


def test_max_age_culls_even_an_active_server(base_url, requirements_repo, actors, stack):
    repo_url, _ = requirements_repo
    ready = read_events(base_url, f"build/git/{git_spec(repo_url, 'main')}")[-1]
    report = ray.get(actors.activity_monitor.cull_once.remote(timeout=3600, max_age=0.001))
    assert user_of(ready) in report.culled
    assert user_of(ready) not in {u["name"] for u in hub_users(stack)}


def test_restarted_session_manager_lists_the_same_sessions(base_url, requirements_repo, actors):
    repo_url, _ = requirements_repo
    read_events(base_url, f"build/git/{git_spec(repo_url, 'main')}")
    before = {(s.user, s.url) for s in ray.get(actors.session_manager.list_sessions.remote())}
    assert before
    ray.kill(actors.session_manager, no_restart=False)
    after = {(s.user, s.url) for s in ray.get(actors.session_manager.list_sessions.remote(), timeout=120)}
    assert after == before


def test_hub_users_are_paged_through(stack):
    async def both() -> tuple[list, list]:
        hub = HubClient(stack.config.hub_url, stack.config.hub_api_token.get_secret_value())
        try:
            return await hub.list_users(page_size=1), await hub.list_users()
        finally:
            await hub.aclose()

    paged, whole = asyncio.run(both())
    assert [u.name for u in paged] == [u.name for u in whole]


def test_remove_user_stops_its_server_then_deletes_it_and_a_gone_user_is_already_removed(
    base_url, requirements_repo, stack
):
    repo_url, _ = requirements_repo
    ready = read_events(base_url, f"build/git/{git_spec(repo_url, 'main')}")[-1]
    assert ready["phase"] == "ready", ready
    user = user_of(ready)
    home = stack.config.data_dir / "sessions" / f"{user}-default"
    assert home.is_dir()

    async def remove_twice() -> object:
        hub = HubClient(stack.config.hub_url, stack.config.hub_api_token.get_secret_value())
        try:
            await hub.remove_user(user)
            await hub.remove_user(user)  # already gone: nothing to do, no error
            return await hub.get_user(user)
        finally:
            await hub.aclose()

    assert asyncio.run(remove_twice()) is None
    assert not home.exists(), "its server was stopped (the spawner removes the session home)"
    answer = httpx.get(ready["url"] + "api/status", headers={"Authorization": f"token {ready['token']}"}, timeout=30)
    assert answer.status_code != 200


def test_hub_down_fails_launches_fast_and_recovers_without_restart(base_url, requirements_repo, stack):
    repo_url, _ = requirements_repo
    path = f"build/git/{git_spec(repo_url, 'main')}"
    running = read_events(base_url, path)[-1]
    assert running["phase"] == "ready", running

    stack.hub.stop()
    try:
        health = httpx.get(base_url + "health", timeout=60)
        assert health.status_code == 503
        assert next(c for c in health.json()["checks"] if c["service"] == "JupyterHub")["ok"] is False
        failure = read_events(base_url, path, timeout=60)[-1]
        assert failure["phase"] == "failed" and "cannot be reached" in failure["message"]
    finally:
        stack.hub.start()

    wait_for(lambda: httpx.get(base_url + "health", timeout=60).status_code == 200, 60, "health to recover")
    status = httpx.get(
        running["url"] + "api/status", headers={"Authorization": f"token {running['token']}"}, timeout=30
    )
    assert status.status_code == 200, "a server started before the hub restart must survive it"
    again = read_events(base_url, path)[-1]
    assert again["phase"] == "ready", again


def test_every_session_home_belongs_to_a_running_server(stack):
    with hub_api(stack) as api:
        running = {u["name"] for u in api.get("users").json() if u.get("servers")}
    homes = {p.name.removesuffix("-default") for p in (stack.config.data_dir / "sessions").glob("*-default")}
    assert homes <= running


def test_named_servers_when_configured(private_manager, built_launch):
    manager = private_manager(named_servers=True)
    ready = asyncio.run(launch_all(manager, built_launch, 1))[0][-1]
    assert ready.phase == "ready", ready
    user, server = ready.url.split("/user/", 1)[1].strip("/").split("/")
    assert len(server) == 8
    assert (
        httpx.get(ready.url + "api/status", headers={"Authorization": f"token {ready.token}"}, timeout=30).status_code
        == 200
    )
    listed = {(s.user, s.server) for s in ray.get(manager.list_sessions.remote())}
    assert (user, server) in listed
    ray.get(manager.stop.remote(user))
    assert user not in {s.user for s in ray.get(manager.list_sessions.remote())}


def test_shutdown_removes_the_temporary_users_of_every_page(tmp_path):
    """What Ctrl-C of `make serve` does, against a hub of its own holding more of its users than one page."""
    token = "shutdown-test-token"
    hub = start_hub(BinderConfig(data_dir=tmp_path), token)
    try:
        api = httpx.Client(base_url=hub.url + "hub/api/", headers={"Authorization": f"token {token}"}, timeout=60)
        with api:
            # More than one page: the hub gives at most 200 users (api_page_max_limit) an answer.
            temporary = [f"temp-{i:03}" for i in range(230)]
            made = api.post("users", json={"usernames": [*temporary, "a-real-user"]})
            assert made.status_code == 201, made.text
            assert api.post(f"groups/{MANAGED_GROUP}", json={}).status_code == 201
            joined = api.post(f"groups/{MANAGED_GROUP}/users", json={"users": temporary})
            assert joined.status_code == 200, joined.text
            hub.stop_all_sessions(token)
            left = api.get("users", params={"limit": 200}).json()
        assert [user["name"] for user in left] == ["a-real-user"]  # only what binder-actors made goes
    finally:
        hub.stop()


def test_the_culler_reads_the_users_idle_since_a_moment_and_not_those_active_after(stack):
    """HubClient.idle_since pages the hub's list by activity, oldest first, and stops at the first active.

    A user's activity is when it last used its token (the hub records it): "idle" uses it, the
    moment is its recorded activity, then "active" uses its own; "never" has none.
    """
    suffix = secrets.token_hex(4)
    idle, active, never = f"scale-idle-{suffix}", f"scale-active-{suffix}", f"scale-never-{suffix}"

    async def report_activity(hub: HubClient, name: str) -> None:
        await hub.create_user(name)
        token = await hub.create_token(name, note="test", scopes=[f"users:activity!user={name}"])
        async with httpx.AsyncClient(timeout=30) as as_the_user:  # as a server reports activity
            answer = await as_the_user.post(
                f"{stack.config.hub_url}hub/api/users/{name}/activity",
                json={"last_activity": datetime.now(timezone.utc).isoformat()},
                headers={"Authorization": f"token {token}"},
            )
        assert answer.status_code in (200, 204), answer.text

    async def read() -> tuple[datetime, list, list]:
        hub = HubClient(stack.config.hub_url, stack.config.hub_api_token.get_secret_value())
        try:
            await hub.create_user(never)
            await report_activity(hub, idle)
            idle_user = await hub.get_user(idle)
            assert idle_user is not None and idle_user.last_activity is not None
            moment = idle_user.last_activity
            await report_activity(hub, active)
            active_user = await hub.get_user(active)
            assert active_user is not None and active_user.last_activity and active_user.last_activity > moment
            whole = await hub.idle_since(moment)
            return moment, whole, await hub.list_users(page_size=1, sort="last_activity", until=moment)
        finally:
            for name in (idle, active, never):
                await hub.remove_user(name)
            await hub.aclose()

    moment, whole, paged = asyncio.run(read())
    # One page (the hub holds fewer than LIST_PAGE_SIZE users here): every idle user, no active one.
    assert {idle, never} <= {user.name for user in whole}
    # Pages of one stop at the first active user. Other tests' servers may report activity meanwhile and
    # move users between pages (offset paging), so only what paging can never do is asserted of them.
    for users in (whole, paged):
        assert active not in {user.name for user in users}
        assert all(user.last_activity is None or user.last_activity <= moment for user in users)
