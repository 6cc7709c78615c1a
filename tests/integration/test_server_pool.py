"""ServerPool on the real stack: a deployment of its own (actors in their own namespace, a hub of its own,
a pinned pool of 2 for one repository, a session quota of 3), on the session's one Ray.

Each test asserts on its own launches and on this deployment's pooled users (the hub's pool group).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import ray
from pydantic import SecretStr

from binder_actors.actors import ActorHandles, ensure_actors, get_actors, kill_actors
from binder_actors.client import BinderClient
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.hub_models import HubUser
from binder_actors.hub_records import pool_group
from binder_actors.launch import launch_events
from binder_actors.models import BuildRequest
from serve_app.embedded import EmbeddedHub, EmbeddedStack, hub_api_token, start_hub
from tests.conftest import REQUIREMENTS_REPO
from tests.docker_stack import resolved_ref
from tests.helpers import GitServer, commit, git_spec, head, run_in_kernel, wait_for

NAMESPACE = "binder-pool"
POOLED = "pool-static"  # BINDER_POOL pins 2 servers for it
OTHER = "pool-other"  # not pooled (BINDER_POOL_MAX=0: no adaptive pool here)
MAX_SESSIONS = 3
POOL_SIZE = 2
REFILL_SECONDS = 120.0


@dataclass
class PoolStack:
    config: BinderConfig
    hub: EmbeddedHub
    actors: ActorHandles

    def users(self) -> list[HubUser]:
        token = self.config.hub_api_token.get_secret_value()
        answer = httpx.get(self.hub.url + "hub/api/users", headers={"Authorization": f"token {token}"}, timeout=10)
        return [HubUser.model_validate(user) for user in answer.json()]

    def waiting(self) -> dict[str, HubUser]:
        """This deployment's pooled users no launch has claimed, whose server is ready."""
        group = pool_group(NAMESPACE)
        return {
            user.name: user
            for user in self.users()
            if group in user.groups and user.waiting_in_pool and any(s.ready for s in user.servers.values())
        }

    def free_of(self, image: str) -> dict[str, HubUser]:
        return {
            name: user
            for name, user in self.waiting().items()
            if any(s.user_options.image == image for s in user.servers.values())
        }

    def launch(self, repo_url: str, launch_id: str = "") -> list[BinderEvent]:
        async def collect() -> list[BinderEvent]:
            spec = git_spec(repo_url, "main")
            return [event async for event in launch_events(self.actors, "git", spec, launch_id=launch_id)]

        return asyncio.run(collect())

    def stop_all(self) -> None:
        """End every session of this deployment's launches (claimed pooled ones included), not the free pool."""
        for user in self.users():
            if user.managed and not user.waiting_in_pool:
                ray.get(self.actors.session_manager.stop.remote(user.name))


@pytest.fixture(scope="module")
def pool(stack: EmbeddedStack, git_server: GitServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoolStack]:
    data_dir = tmp_path_factory.mktemp("binder-pool-data")
    shared_stacks = stack.config.data_dir / "stacks"
    shared_stacks.mkdir(exist_ok=True)
    (data_dir / "stacks").symlink_to(shared_stacks)  # the shared server stack, built once
    git_server.add(POOLED, {**REQUIREMENTS_REPO, "which.txt": "pooled\n"})
    git_server.add(OTHER, {**REQUIREMENTS_REPO, "which.txt": "other\n"})
    config = BinderConfig(
        data_dir=data_dir,
        namespace=NAMESPACE,
        cull_every=3600,
        ref_cache_ttl=0,  # a new commit is seen at once
        max_sessions=MAX_SESSIONS,
        pool=[{"pattern": f".*{POOLED}", "size": POOL_SIZE}],
    )
    (data_dir / "hub").mkdir()
    token = hub_api_token(data_dir / "hub")
    hub = start_hub(config, token)
    config = config.model_copy(update={"hub_url": hub.url, "hub_api_token": SecretStr(token)})
    try:
        yield PoolStack(config, hub, ensure_actors(config))
    finally:
        kill_actors(NAMESPACE)  # the pool first: it would start servers while the sessions go
        hub.stop_all_sessions(token)
        hub.stop()


def ready_of(events: list[BinderEvent]) -> BinderEvent:
    assert events[-1].phase == "ready", events[-1]
    return events[-1]


def user_of(ready: BinderEvent) -> str:
    assert ready.url
    return ready.url.split("/user/", 1)[1].split("/", 1)[0]


def image_of(git_server: GitServer, name: str, sha: str) -> str:
    return BuildRequest.for_ref(resolved_ref(git_server.url(name), sha)).image


def warm(pool: PoolStack, git_server: GitServer) -> str:
    """Launch the pooled repository once (the pool learns its image), end that session, wait for a full pool."""
    ready = ready_of(pool.launch(git_server.url(POOLED)))
    image = ready.image
    assert image
    pool.stop_all()
    wait_for(lambda: len(pool.free_of(image)) >= POOL_SIZE, REFILL_SECONDS, "the pool to fill")
    return image


def test_a_pooled_launch_takes_a_started_server_whose_kernel_runs_and_the_pool_refills(
    pool: PoolStack, git_server: GitServer
) -> None:
    image = warm(pool, git_server)
    free = pool.free_of(image)
    hits = ray.get(pool.actors.server_pool.status.remote()).hits
    events = pool.launch(git_server.url(POOLED), launch_id=uuid.uuid4().hex)
    ready = ready_of(events)
    assert user_of(ready) in free  # a server that was already running
    assert not [e for e in events if e.phase == "launching"]  # no spawn, no spawn progress on the path
    assert (ready.image, ready.repo_url) == (image, git_server.url(POOLED))
    assert ready.binder_request == f"v2/git/{git_spec(git_server.url(POOLED), 'main')}"
    assert ready.token and ready.token != free[user_of(ready)].servers[""].user_options.token  # made at claim time
    assert run_in_kernel(ready.url, ready.token, "print(6 * 7)").strip() == "42"
    status = BinderClient(pool.actors).status().pool  # what `binder-actors status` prints
    assert status is not None and status.enabled and status.hits == hits + 1
    claimed = {u.name: u for u in pool.users()}[user_of(ready)]
    assert not claimed.waiting_in_pool  # the hub records the claim
    wait_for(lambda: len(pool.free_of(image)) >= POOL_SIZE, REFILL_SECONDS, "the pool to refill after a claim")
    pool.stop_all()


def test_a_reconnecting_launch_gets_the_server_it_claimed_and_concurrent_launches_never_share_one(
    pool: PoolStack, git_server: GitServer
) -> None:
    image = warm(pool, git_server)
    launch_id = uuid.uuid4().hex
    first = ready_of(pool.launch(git_server.url(POOLED), launch_id=launch_id))
    again = ready_of(pool.launch(git_server.url(POOLED), launch_id=launch_id))  # what Last-Event-ID does
    assert again.url == first.url
    assert run_in_kernel(again.url, again.token, "print('same')").strip() == "same"
    pool.stop_all()
    wait_for(lambda: len(pool.free_of(image)) >= POOL_SIZE, REFILL_SECONDS, "the pool to fill")

    async def together() -> list[list[BinderEvent]]:
        async def one() -> list[BinderEvent]:
            spec = git_spec(git_server.url(POOLED), "main")
            return [e async for e in launch_events(pool.actors, "git", spec, launch_id=uuid.uuid4().hex)]

        return await asyncio.gather(*(one() for _ in range(MAX_SESSIONS)))

    urls = [ready_of(events).url for events in asyncio.run(together())]
    assert len(set(urls)) == MAX_SESSIONS  # two from the pool, one started: each its own server
    pool.stop_all()


def test_pooled_servers_are_not_culled_nor_counted_until_claimed_and_go_first_when_room_is_needed(
    pool: PoolStack, git_server: GitServer
) -> None:
    image = warm(pool, git_server)
    waiting = set(pool.free_of(image))
    report = ray.get(pool.actors.activity_monitor.cull_once.remote(timeout=1))  # everything is idle by now
    assert not waiting & set(report.culled)
    # A quota of 3 with 2 pooled servers waiting: 3 real sessions are still admitted, the pool making room.
    sessions = [ready_of(pool.launch(git_server.url(OTHER), launch_id=uuid.uuid4().hex)) for _ in range(2)]
    sessions.append(ready_of(pool.launch(git_server.url(POOLED), launch_id=uuid.uuid4().hex)))
    assert len({user_of(ready) for ready in sessions}) == 3
    wait_for(lambda: not pool.free_of(image), REFILL_SECONDS, "the pool to give its servers up to real sessions")
    refused = pool.launch(git_server.url(OTHER), launch_id=uuid.uuid4().hex)
    assert refused[-1].phase == "failed" and refused[-1].status_code == 429
    pool.stop_all()
    wait_for(lambda: len(pool.free_of(image)) >= POOL_SIZE, REFILL_SECONDS, "the pool to fill once room is back")


def test_a_restarted_pool_finds_its_servers_in_the_hub(pool: PoolStack, git_server: GitServer) -> None:
    image = warm(pool, git_server)
    before = set(pool.free_of(image))
    ray.kill(pool.actors.server_pool, no_restart=False)  # Ray starts it again

    def restarted_with_its_servers() -> bool:
        try:
            status = ray.get(get_actors(NAMESPACE).server_pool.status.remote(), timeout=10)
        except ray.exceptions.RayError:
            return False
        return status.free.get(image, 0) == POOL_SIZE

    wait_for(restarted_with_its_servers, REFILL_SECONDS, "the restarted pool to find its servers")
    assert set(pool.free_of(image)) == before  # none started again, none lost
    ready = ready_of(pool.launch(git_server.url(POOLED), launch_id=uuid.uuid4().hex))
    assert user_of(ready) in before
    pool.stop_all()


def test_a_new_commit_of_a_pooled_repository_drains_the_old_images_servers(
    pool: PoolStack, git_server: GitServer
) -> None:
    old = warm(pool, git_server)
    repo = git_server.root / POOLED
    (repo / "which.txt").write_text("pooled, second commit\n")
    commit(repo, "second")
    sha = head(repo)
    new = ready_of(pool.launch(git_server.url(POOLED), launch_id=uuid.uuid4().hex)).image
    assert new == image_of(git_server, POOLED, sha) and new != old
    wait_for(
        lambda: not pool.free_of(old) and len(pool.free_of(new)) >= POOL_SIZE,
        REFILL_SECONDS,
        "the old image's servers to go and the new one's to start",
    )
    pool.stop_all()


def test_session_manager_killed_while_pooled_launches_claim_hands_no_server_to_two_launches(
    pool: PoolStack, git_server: GitServer
) -> None:
    image = warm(pool, git_server)
    launch_ids = [uuid.uuid4().hex for _ in range(POOL_SIZE)]
    spec = git_spec(git_server.url(POOLED), "main")

    async def launches_with_a_kill() -> list[list[BinderEvent]]:
        found = asyncio.Event()  # a launch found its image: its next step is SessionManager's launch and claim

        async def one(launch_id: str) -> list[BinderEvent]:
            events = []
            async for event in launch_events(pool.actors, "git", spec, launch_id=launch_id):
                events.append(event)
                if event.phase == "built":
                    found.set()
            return events

        running = [asyncio.create_task(one(launch_id)) for launch_id in launch_ids]
        await asyncio.wait_for(found.wait(), timeout=60)
        ray.kill(pool.actors.session_manager, no_restart=False)  # dies under the claims; Ray starts it again
        return await asyncio.gather(*running)

    first = asyncio.run(launches_with_a_kill())
    for events in first:  # each launch ends: ready, or asked to retry (never a hang, never a 500)
        assert events[-1].phase in ("ready", "failed"), events[-1]
        if events[-1].phase == "failed":
            assert "retry" in (events[-1].message or ""), events[-1]
    # Every launch id asked again (what Last-Event-ID or a reload does) gets a server of its own,
    # the same one it was given before the kill if it was given one.
    again = [ready_of(pool.launch(git_server.url(POOLED), launch_id=launch_id)) for launch_id in launch_ids]
    for before, after in zip(first, again, strict=True):
        if before[-1].phase == "ready":
            assert after.url == before[-1].url
    assert len({ready.url for ready in again}) == len(launch_ids)
    for ready in again:
        assert run_in_kernel(ready.url, ready.token, "print('mine')").strip() == "mine"
    # The hub's record: no pooled user claimed twice, no claim on two users.
    claims: dict[str, list[str]] = {}
    for user in pool.users():
        marks = [group for group in user.groups if group.startswith("binder-actors-claim-")]
        assert len(marks) <= 1, (user.name, marks)
        for mark in marks:
            claims.setdefault(mark, []).append(user.name)
    assert all(len(users) == 1 for users in claims.values()), claims
    pool.stop_all()
    wait_for(lambda: len(pool.free_of(image)) >= POOL_SIZE, REFILL_SECONDS, "the pool to fill again")
