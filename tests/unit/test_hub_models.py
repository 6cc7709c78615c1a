"""JupyterHub's user and server JSON as typed models: lenient parsing, ready events, sessions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from binder_actors.hub_models import HubServer, HubUser, SpawnProgress

HUB = "http://127.0.0.1:8081/"
OPTIONS = {
    "image": "local/repo-abc:0123",
    "token": "secret-token",
    "repo_url": "https://github.com/org/repo",
    "binder_ref_url": "https://github.com/org/repo/tree/0123",
    "binder_launch_host": "https://binder.example.org/",
    "binder_request": "v2/gh/org/repo/HEAD",
    "binder_persistent_request": "v2/gh/org/repo/0123",
    "binder_launch_key": "key-1",
}


def hub_user(**server: object) -> HubUser:
    return HubUser.model_validate(
        {
            "kind": "user",  # fields the models do not name are ignored
            "name": "repo-abc",
            "admin": False,
            "groups": [],
            "servers": {"": {"name": "", "url": "/user/repo-abc/", "progress_url": "...", **server}},
        }
    )


def test_a_ready_binder_server_gives_binderhubs_ready_event():
    user = hub_user(ready=True, pending=None, user_options=OPTIONS, started="2026-11-30T10:00:00.000000Z")
    event = user.ready_event(HUB)
    assert event is not None
    assert event.to_wire() == {
        "phase": "ready",
        "message": "server running at http://127.0.0.1:8081/user/repo-abc/\n",
        "url": "http://127.0.0.1:8081/user/repo-abc/",
        **{key: value for key, value in OPTIONS.items() if key != "binder_launch_key"},
    }
    assert user.launch_key == "key-1"
    assert user.servers[""].started == datetime(2026, 11, 30, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "server",
    [
        {"ready": False, "pending": "spawn", "user_options": OPTIONS},
        {"ready": True, "pending": "stop", "user_options": OPTIONS},
        {"ready": True, "user_options": {**OPTIONS, "token": ""}},  # not a Binder session
        {"ready": True, "user_options": None},
        {"ready": True},
    ],
)
def test_no_ready_event_for_a_server_that_is_not_a_ready_binder_session(server):
    assert hub_user(**server).ready_event(HUB) is None


def test_missing_and_null_fields_take_their_defaults():
    user = HubUser.model_validate({"name": "bare", "admin": None, "servers": None, "created": None})
    assert (user.admin, user.servers, user.launch_key, user.sessions(HUB)) == (False, {}, "", [])
    server = HubServer.model_validate({"ready": None, "user_options": None, "last_activity": None})
    assert (server.ready, server.user_options.repo_url, server.last_activity) == (False, "", None)
    assert SpawnProgress.model_validate({"progress": 50, "html_message": "<b>x</b>"}).message == ""


def test_sessions_of_a_user_one_per_server():
    user = HubUser.model_validate(
        {
            "name": "repo-abc",
            "servers": {
                "": {"ready": True, "url": "/user/repo-abc/", "user_options": OPTIONS},
                "x1": {"ready": False, "pending": "spawn", "url": "/user/repo-abc/x1/"},
            },
        }
    )
    sessions = user.sessions(HUB)
    assert [(s.server, s.url, s.ready, s.repo_url) for s in sessions] == [
        ("", "http://127.0.0.1:8081/user/repo-abc/", True, OPTIONS["repo_url"]),
        ("x1", "http://127.0.0.1:8081/user/repo-abc/x1/", False, ""),
    ]


def test_the_session_token_stays_out_of_a_models_repr():
    assert "secret-token" not in repr(hub_user(ready=True, user_options=OPTIONS))


def test_user_options_that_are_not_binders_are_read_as_absent():
    """A server on a shared hub that binder-actors did not start may hold anything under these names."""
    user = hub_user(ready=True, user_options={"image": {"a": 1}, "token": 5, "repo_url": ["x"], "other": object()})
    options = user.servers[""].user_options
    assert (options.image, options.token, options.repo_url) == ("", "", "")
    assert user.ready_event(HUB) is None  # no token: not a Binder session


def test_spawn_progress_with_a_fractional_percentage_is_read():
    assert SpawnProgress.model_validate({"progress": 33.3, "message": "Pulling"}).progress == pytest.approx(33.3)
