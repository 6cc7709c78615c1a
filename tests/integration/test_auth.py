"""Authenticated mode against a real hub with logins (tests/auth_stack.py): a launch by a logged-in user
is a named server of theirs, limited per user, culled without deleting the user, and no user can open,
stop or re-attach to another's server, through the hub or through binder-actors.

Every test makes users of its own and asserts on them only: other tests' servers run on the same hub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import ray

from binder_actors.client import BinderClient
from binder_actors.hub import HubError
from binder_actors.owned_sessions import named_server_limit_message
from tests.auth_stack import NAMED_SERVER_LIMIT, NAMESPACE, PASSWORD, AuthStack
from tests.conftest import REQUIREMENTS_REPO
from tests.helpers import git_spec, read_events, run_in_kernel, wait_for


@pytest.fixture(scope="module")
def spec(git_server) -> str:
    git_server.add("auth-repo", REQUIREMENTS_REPO)
    return f"git/{git_spec(git_server.url('auth-repo'), 'main')}"


def signed_in(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def launch_as(auth_stack: AuthStack, spec: str, token: str) -> list[dict]:
    return read_events(auth_stack.url, f"build/{spec}", headers=signed_in(token))


def ready_server(events: list[dict], user: str) -> str:
    """The named server of `user` a launch ended ready with."""
    ready = events[-1]
    assert ready["phase"] == "ready", ready
    owner, _, server = ready["url"].split("/user/", 1)[1].strip("/").partition("/")
    assert owner == user and server, ready["url"]
    return server


def sessions_of(auth_stack: AuthStack, token: str) -> list[tuple[str, str]]:
    answer = httpx.get(auth_stack.url + "api/sessions", headers=signed_in(token), timeout=30)
    assert answer.status_code == 200, answer.text
    return sorted((session["user"], session["server"]) for session in answer.json())


def test_a_launch_with_an_api_token_is_a_named_server_of_that_user(auth_stack, spec):
    alice, token = auth_stack.new_user("alice")
    events = launch_as(auth_stack, spec, token)
    server = ready_server(events, alice)
    assert events[-1]["url"] == f"{auth_stack.hub.url}user/{alice}/{server}/"
    model = auth_stack.user(alice)
    assert model is not None and not model.managed, "a logged-in user is not one of binder-actors' own"
    assert model.servers[server].ready
    assert run_in_kernel(events[-1]["url"], events[-1]["token"], "print(6 * 7)").strip() == "42"
    assert sessions_of(auth_stack, token) == [(alice, server)]
    assert PASSWORD not in json.dumps(events) and token not in json.dumps(events)


def test_pages_and_streams_ask_for_a_login_and_the_rest_stays_open(auth_stack, spec):
    link = f"v2/{spec}?labpath=index.ipynb"
    answer = httpx.get(auth_stack.url + link, timeout=30)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}/" == auth_stack.hub.url
    assert location.path == "/hub/api/oauth2/authorize"
    query = parse_qs(location.query)
    assert query["redirect_uri"] == [auth_stack.url + "oauth_callback"]
    assert query["client_id"] == ["service-binder"]
    back_to = jwt.decode(query["state"][0], options={"verify_signature": False})["next"]
    assert back_to == urlsplit(auth_stack.url).path + link, "the login comes back to the same link, query included"
    login_page = httpx.get(answer.headers["location"], follow_redirects=True, timeout=30)
    assert login_page.url.path == "/hub/login" and 'name="password"' in login_page.text

    assert httpx.get(auth_stack.url, timeout=30).status_code == 302  # the landing page too
    for headers in ({}, signed_in("not-a-hub-token")):
        with httpx.stream("GET", auth_stack.url + f"build/{spec}", headers=headers, timeout=30) as stream:
            assert stream.status_code == 403
            assert "Log in first" in stream.read().decode()
    refused = httpx.get(auth_stack.url + "api/sessions", timeout=30)
    assert refused.status_code == 403 and "Log in first" in refused.json()["message"]

    for open_path in ("health", "versions", "badge.svg", "badge_logo.svg", "api/repoproviders", "metrics"):
        answer = httpx.get(auth_stack.url + open_path, timeout=60)
        assert answer.status_code in (200, 503) and "location" not in answer.headers, open_path


def test_the_named_server_limit_refuses_with_binderhubs_message(auth_stack, spec):
    carol, token = auth_stack.new_user("carol")
    servers = [ready_server(launch_as(auth_stack, spec, token), carol) for _ in range(NAMED_SERVER_LIMIT)]
    assert len(set(servers)) == NAMED_SERVER_LIMIT
    refused = launch_as(auth_stack, spec, token)[-1]
    assert refused["phase"] == "failed"
    assert refused["message"] == named_server_limit_message(carol, NAMED_SERVER_LIMIT) + "\n"
    assert set(auth_stack.user(carol).servers) == set(servers)

    # Stopping one of them (binder-actors' API) makes room again; the user stays.
    stopped = httpx.delete(auth_stack.url + f"api/sessions/{servers[0]}", headers=signed_in(token), timeout=60)
    assert stopped.status_code == 204, stopped.text
    wait_for(lambda: servers[0] not in auth_stack.user(carol).servers, 60, "the stopped server to be removed")
    again = ready_server(launch_as(auth_stack, spec, token), carol)
    assert sessions_of(auth_stack, token) == sorted([(carol, servers[1]), (carol, again)])


def read_numbered(auth_stack: AuthStack, path: str, headers: dict[str, str]) -> list[tuple[str, dict]]:
    """(event id, event) of one stream, until the server closes it."""
    events, event_id = [], ""
    asked = {"Accept": "text/event-stream", **headers}
    with httpx.stream("GET", auth_stack.url + path, headers=asked, timeout=600) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                events.append((event_id, json.loads(line[5:])))
    return events


def test_no_user_opens_stops_or_reattaches_to_anothers_server(auth_stack, spec):
    alice, alice_token = auth_stack.new_user("alice")
    bob, bob_token = auth_stack.new_user("bob")
    numbered = read_numbered(auth_stack, f"build/{spec}", signed_in(alice_token))
    alices = numbered[-1][1]
    alice_server = ready_server([alices], alice)
    bobs = launch_as(auth_stack, spec, bob_token)[-1]
    bob_server = ready_server([bobs], bob)

    # Through the hub: neither bob's API token nor his session's token opens alice's server, and the
    # hub does not let him stop it or start one for her.
    for token in (bob_token, bobs["token"]):
        opened = httpx.get(alices["url"] + "api/status", headers=signed_in(token), timeout=30)
        assert opened.status_code == 403, opened.status_code
    with auth_stack.hub_api(bob_token) as hub:
        assert hub.delete(f"users/{alice}/servers/{alice_server}").status_code in (403, 404)
        assert hub.post(f"users/{alice}/servers/another").status_code in (403, 404)
    with auth_stack.hub_api(alices["token"]) as hub:  # her session's token is good for her server only
        assert hub.delete(f"users/{alice}/servers/{alice_server}").status_code in (403, 404)

    # Through binder-actors: bob sees only his session, cannot stop hers, nor re-attach to her launch.
    assert sessions_of(auth_stack, bob_token) == [(bob, bob_server)]
    stop = httpx.delete(auth_stack.url + f"api/sessions/{alice_server}", headers=signed_in(bob_token), timeout=30)
    assert stop.status_code == 404, stop.text
    last_id = numbered[0][0]
    resumed = read_events(auth_stack.url, f"build/{spec}", headers={**signed_in(bob_token), "Last-Event-ID": last_id})
    assert [event["phase"] for event in resumed] == ["failed"]
    assert "belongs to another user" in resumed[0]["message"]
    client = BinderClient.connect(namespace=NAMESPACE, token=bob_token)
    assert client.owner == bob
    assert {(s.user, s.server) for s in client.sessions()} == {(bob, bob_server)}
    with pytest.raises(HubError, match="no Binder session"):
        client.stop(alice_server)

    # Alice's server ran through all of it, and she re-attaches to her own launch.
    assert auth_stack.user(alice).servers[alice_server].ready
    again = read_events(auth_stack.url, f"build/{spec}", headers={**signed_in(alice_token), "Last-Event-ID": last_id})
    assert again[-1]["phase"] == "ready" and again[-1]["url"] == alices["url"]
    with pytest.raises(PermissionError):
        BinderClient.connect(namespace=NAMESPACE, token="not-a-hub-token")


def test_the_python_client_launches_and_stops_as_the_user_of_its_token(auth_stack, spec):
    erin, token = auth_stack.new_user("erin")
    client = BinderClient.connect(namespace=NAMESPACE, token=token)
    session = client.start(f"{auth_stack.url}v2/{spec}?labpath=index.ipynb")
    assert session.user == erin and session.server
    assert session.run("import tabulate; print(tabulate.__version__)").strip() == "0.9.0"
    assert [(s.user, s.server) for s in client.sessions()] == [(erin, session.server)]
    client.stop(session)
    wait_for(lambda: not auth_stack.user(erin).servers, 60, "erin's server to be removed")
    assert client.sessions() == []


def test_the_culler_stops_idle_servers_of_logged_in_users_and_keeps_the_users(auth_stack, spec):
    dave, token = auth_stack.new_user("dave")
    server = ready_server(launch_as(auth_stack, spec, token), dave)
    report = ray.get(auth_stack.actors.activity_monitor.cull_once.remote(timeout=0.001))
    assert f"{dave}/{server}" in report.culled and dave not in report.culled, report
    wait_for(lambda: server not in auth_stack.user(dave).servers, 60, "dave's culled server to be removed")
    assert auth_stack.user(dave) is not None, "the culler deleted a logged-in user"
    assert sessions_of(auth_stack, token) == []


def cli_as(token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`binder-actors <args> --token <token>` against the authenticated deployment."""
    address = ray.get_runtime_context().gcs_address
    return subprocess.run(
        [sys.executable, "-m", "binder_actors.cli", *args, "--address", address, "--token", token],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BINDER_NAMESPACE": NAMESPACE},
    )


def test_the_command_line_lists_and_stops_only_the_sessions_of_its_token(auth_stack, spec):
    gina, token = auth_stack.new_user("gina")
    _, other_token = auth_stack.new_user("hank")
    server = ready_server(launch_as(auth_stack, spec, token), gina)
    listed = cli_as(token, "sessions", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [(s["user"], s["server"]) for s in json.loads(listed.stdout)] == [(gina, server)]
    assert json.loads(cli_as(other_token, "sessions", "--json").stdout) == []
    refused = cli_as(other_token, "stop", server)
    assert refused.returncode == 1 and "no Binder session" in refused.stderr
    assert auth_stack.user(gina).servers[server].ready
    stopped = cli_as(token, "stop", server)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    wait_for(lambda: server not in auth_stack.user(gina).servers, 60, "gina's stopped server to be removed")
    assert auth_stack.user(gina) is not None
    wrong = cli_as("not-a-hub-token", "sessions")
    assert wrong.returncode == 2 and "does not accept this API token" in wrong.stderr
