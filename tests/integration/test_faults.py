"""Each actor killed (and restarted by Ray) while 20 launches are in flight: nothing is lost or left behind.

Every launch ends `ready` or in a `failed` event that says to retry; afterwards every session the
hub runs is a complete one (no user without a server, no spawn left pending), no image is
half-built and no build lock is left.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import ray

from binder_actors.registries.local import MARKER
from tests.conftest import REQUIREMENTS_REPO, complete, users_of
from tests.helpers import git_spec, read_events, wait_for

LAUNCHES = 20
ACTORS = ["RefResolver", "ImageCache", "BuildScheduler", "SessionManager", "ActivityMonitor"]


@pytest.mark.parametrize("actor_name", ACTORS)
def test_launches_survive_an_actor_restart(actor_name, base_url, git_server, stack, actors):
    name = f"fault-{actor_name.lower()}"
    git_server.add(name, REQUIREMENTS_REPO)
    path = f"build/git/{git_spec(git_server.url(name), 'main')}"
    if actor_name != "BuildScheduler":  # the others are killed with the image built: launches in flight
        first = read_events(base_url, path)[-1]
        assert first["phase"] == "ready", first

    with ThreadPoolExecutor(LAUNCHES) as pool:
        launches = [pool.submit(read_events, base_url, path) for _ in range(LAUNCHES)]
        if actor_name == "BuildScheduler":
            wait_for(lambda: ray.get(actors.build_scheduler.running.remote()), 120, "the build to run")
        else:
            wait_for(lambda: len(users_of(stack, name)) > 1, 120, "launches to reach the hub")
        ray.kill(ray.get_actor(actor_name, namespace=stack.config.namespace), no_restart=False)
        finals = [launch.result(timeout=600)[-1] for launch in launches]

    for final in finals:
        assert final["phase"] == "ready" or (final["phase"] == "failed" and "retry" in final["message"]), final
    if actor_name not in ("SessionManager", "BuildScheduler"):  # their calls are retried across the restart
        assert [f["message"] for f in finals if f["phase"] != "ready"] == []

    # Every user the hub has for this repository is a finished session, none half-made...
    wait_for(lambda: all(complete(user) for user in users_of(stack, name)), 120, "no half-made sessions")
    # ...and each is one a launch delivered: nothing runs that nobody was told about.
    delivered = sum(final["phase"] == "ready" for final in finals) + (actor_name != "BuildScheduler")  # + the first
    wait_for(lambda: len(users_of(stack, name)) == delivered, 120, "abandoned launches to be removed")
    known = {s.user for s in ray.get(actors.session_manager.list_sessions.remote()) if s.user.startswith(name)}
    assert known == {user.name for user in users_of(stack, name)}

    # No half-built image and no build left holding a lock, once the restarted actor has cleaned up.
    def cleaned_up() -> bool:
        images = [d for d in stack.config.images_dir.iterdir() if name in d.name]
        locks = stack.config.data_dir / "builds"
        left = list(locks.glob("*.json")) if locks.is_dir() else []
        return all((d / MARKER).exists() for d in images) and not left

    wait_for(cleaned_up, 120, "the restarted actor to remove interrupted builds")

    for user in users_of(stack, name):
        ray.get(actors.session_manager.stop.remote(user.name))


@pytest.mark.parametrize("actor_name", ["BuildScheduler", "SessionManager"])
def test_a_launch_made_as_an_actor_restarts_waits_for_it(actor_name, base_url, git_server, stack, actors):
    """Their streams are not retried by Ray: a call that meets the actor restarting is made again."""
    name = f"restarting-{actor_name.lower()}"
    git_server.add(name, REQUIREMENTS_REPO)
    path = f"build/git/{git_spec(git_server.url(name), 'main')}"
    ray.kill(ray.get_actor(actor_name, namespace=stack.config.namespace), no_restart=False)
    final = read_events(base_url, path)[-1]
    assert final["phase"] == "ready", final
    for user in users_of(stack, name):
        ray.get(actors.session_manager.stop.remote(user.name))
