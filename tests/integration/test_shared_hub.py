"""binder-actors on a hub it shares with real users: it stops, deletes and culls only the users it created.

The real users: one without a server, and one whose server runs idle (a session started by a launch,
then taken out of the `binder-actors` group, which is all that tells the two kinds apart). Nothing
of theirs changes through SessionManager's start-up sweep, a culling sweep that culls everything
idle, `stop` through binder-actors' API, and what Ctrl-C of `make serve` does.
"""

from __future__ import annotations

import httpx
import pytest
import ray

from binder_actors.hub_models import MANAGED_GROUP, HubUser
from tests.conftest import REQUIREMENTS_REPO
from tests.helpers import git_spec, read_events, wait_for


def hub_api(stack) -> httpx.Client:
    token = stack.config.hub_api_token.get_secret_value()
    return httpx.Client(
        base_url=stack.config.hub_url + "hub/api/", headers={"Authorization": f"token {token}"}, timeout=30
    )


def user_model(api: httpx.Client, name: str) -> HubUser | None:
    answer = api.get(f"users/{name}")
    return HubUser.model_validate(answer.json()) if answer.status_code == 200 else None


def test_real_users_of_a_shared_hub_are_never_touched(base_url, git_server, stack, actors):
    git_server.add("shared-hub", REQUIREMENTS_REPO)
    path = f"build/git/{git_spec(git_server.url('shared-hub'), 'main')}"
    with hub_api(stack) as api:
        assert api.post("users/alice-real").status_code == 201
        ready = read_events(base_url, path)[-1]
        assert ready["phase"] == "ready", ready
        bob = ready["url"].rstrip("/").rsplit("/", 1)[-1]
        ours = read_events(base_url, path)[-1]  # a session binder-actors made, to show the sweeps do work
        assert ours["phase"] == "ready", ours
        mine = ours["url"].rstrip("/").rsplit("/", 1)[-1]
        assert user_model(api, bob).managed
        answer = api.request("DELETE", f"groups/{MANAGED_GROUP}/users", json={"users": [bob]})
        assert answer.status_code == 200, answer.text
        before = {name: user_model(api, name) for name in ("alice-real", bob)}
        assert before[bob].servers[""].ready and not before["alice-real"].servers

        def untouched() -> None:
            for name, was in before.items():
                now = user_model(api, name)
                assert now is not None, f"{name} was deleted"
                assert now.servers.keys() == was.servers.keys(), f"{name}'s servers changed"
                assert all(server.ready for server in now.servers.values()), f"{name}'s server was stopped"

        # SessionManager's start-up sweep (users without a server are removed there: alice has none).
        ray.kill(ray.get_actor("SessionManager", namespace=stack.config.namespace), no_restart=False)
        sessions = ray.get(actors.session_manager.list_sessions.remote())
        assert {s.user for s in sessions}.isdisjoint(before), "binder-actors lists users it did not create"
        untouched()

        # binder-actors' own API refuses to stop them, saying why.
        for name in before:
            with pytest.raises(ray.exceptions.RayTaskError, match="not created by binder-actors"):
                ray.get(actors.session_manager.stop.remote(name))
        untouched()

        # A sweep that culls every server and every user without one, however recent.
        report = ray.get(actors.activity_monitor.cull_once.remote(timeout=0.001, max_age=0.001))
        assert mine in report.culled and set(report.culled).isdisjoint(before), report
        wait_for(lambda: user_model(api, mine) is None, 60, "the culled session of binder-actors to go")
        untouched()

        # What Ctrl-C of `make serve` does before it stops the hub.
        stack.hub.stop_all_sessions(stack.config.hub_api_token.get_secret_value())
        untouched()

        api.delete(f"users/{bob}/server")
        wait_for(lambda: not user_model(api, bob).servers, 60, "the real user's server to stop")
        for name in before:
            assert api.delete(f"users/{name}").status_code == 204
