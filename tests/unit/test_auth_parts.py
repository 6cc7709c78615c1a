"""Authenticated mode's pure parts: which servers are a logged-in user's Binder sessions, the culler's
verdict on them, the login gate's routes, tokens, cookies and redirects, and the settings."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from binder_actors.actors.activity_monitor import doomed_servers, server_verdict
from binder_actors.config import BinderConfig, ConfigError, config_environment
from binder_actors.hub_models import MANAGED_GROUP, HubServer, HubUser
from binder_actors.owned_sessions import binder_users, owned_servers, server_scope, session_repos
from serve_app.access import RequestFacts
from serve_app.auth import LOGIN_COOKIE, LoginGate, _cookies, needs_login, request_token, safe_next

HOST = "https://binder.example.org/"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def server(name: str, launch_host: str = HOST, idle: float = 0, ready: bool = True) -> dict:
    moment = (NOW - timedelta(seconds=idle)).isoformat()
    options = {"image": "img:1", "token": "t", "repo_url": f"https://repo/{name}", "binder_launch_host": launch_host}
    return {"name": name, "ready": ready, "url": f"/user/u/{name}/", "started": moment, "last_activity": moment,
            "user_options": options}  # fmt: skip


def user(name: str, servers: list[dict], managed: bool = False) -> HubUser:
    groups = [MANAGED_GROUP] if managed else []
    return HubUser.model_validate({"name": name, "groups": groups, "servers": {s["name"]: s for s in servers}})


@pytest.mark.parametrize(
    ("servers", "owned"),
    [
        ([server("a")], {"a"}),
        ([server("a"), {"name": "own", "ready": True}], {"a"}),  # a server the user started themselves
        ([server("a", launch_host="https://other.example.org/")], set()),  # another deployment's
        ([], set()),
    ],
)
def test_only_this_deployments_servers_are_a_users_binder_sessions(servers, owned):
    found = owned_servers(user("alice", servers), HOST)
    assert (set(found.servers) if found else set()) == owned


def test_binder_users_leave_logged_in_users_out_unless_auth_is_on():
    temporary = user("repo-abc", [server("")], managed=True)
    alice = user("alice", [server("a"), {"name": "own", "ready": True}])
    assert binder_users([temporary, alice], HOST, logged_in=False) == [temporary]
    both = binder_users([temporary, alice], HOST, logged_in=True)
    assert [u.name for u in both] == ["repo-abc", "alice"] and set(both[1].servers) == {"a"}


def test_session_keys_count_a_temporary_user_once_and_a_logged_in_user_per_server():
    assert session_repos(user("repo-abc", [server("x")], managed=True)) == {"repo-abc": "https://repo/x"}
    assert session_repos(user("alice", [server("a"), server("b")])) == {
        "alice/a": "https://repo/a",
        "alice/b": "https://repo/b",
    }


def test_a_logged_in_users_session_token_opens_that_server_only():
    assert server_scope("alice", "repo-x1") == "access:servers!server=alice/repo-x1"
    assert server_scope("repo-abc", "") == "access:servers!user=repo-abc"


@pytest.mark.parametrize(
    ("model", "max_age", "cull"),
    [
        (server("a", idle=700), 0, True),
        (server("a", idle=10), 0, False),
        (server("a", idle=700, ready=False), 0, False),
        ({**server("a", idle=700), "pending": "stop"}, 0, False),
        ({**server("a", idle=10), "last_activity": NOW.isoformat()}, 5, True),  # older than max_age
    ],
)
def test_server_verdict(model, max_age, cull):
    verdict = server_verdict(HubServer.model_validate(model), NOW, timeout=600, max_age=max_age)
    assert verdict.cull is cull, verdict.reason


def test_the_culler_takes_servers_of_logged_in_users_never_the_users():
    users = [user("alice", [server("idle", idle=700), server("busy", idle=5)]), user("repo-abc", [server("x")], True)]
    assert [(u, s) for u, s, _ in doomed_servers(users, NOW, launch_host=HOST, timeout=600)] == [("alice", "idle")]


@pytest.mark.parametrize(
    ("path", "needed"),
    [("/", True), ("/v2/gh/a/b/HEAD", True), ("/build/gh/a/b/HEAD", True), ("/api/sessions", True),
     ("/health", False), ("/versions", False), ("/metrics", False), ("/badge.svg", False),
     ("/api/repoproviders", False), ("/oauth_callback", False)],
)  # fmt: skip
def test_which_routes_need_a_login(path, needed):
    assert needs_login(path) is needed


@pytest.mark.parametrize(
    ("header", "token"),
    [("token abc", "abc"), ("Bearer abc", "abc"), ("Basic abc", ""), ("", ""), ("token", "")],
)
def test_request_token(header, token):
    assert request_token(header) == token


@pytest.mark.parametrize(
    ("target", "back"),
    [("/binder/v2/gh/a/b/HEAD?labpath=x", "/binder/v2/gh/a/b/HEAD?labpath=x"), ("//evil.example/", "/binder/"),
     ("https://evil.example/binder/", "/binder/"), ("/other/", "/binder/"), ("/binder/\\evil", "/binder/")],
)  # fmt: skip
def test_a_login_only_goes_back_to_this_service(target, back):
    assert safe_next(target, "/binder/") == back


def gate() -> LoginGate:
    config = BinderConfig(
        auth_enabled=True,
        hub_url="http://127.0.0.1:9/",
        hub_api_token=SecretStr("service-secret"),
        public_url="https://binder.example.org/binder/",
        base_url="/binder/",
    )
    return LoginGate(config)


def facts(path: str, query: dict[str, str], cookie: str = "") -> RequestFacts:
    return RequestFacts("GET", path, "/binder" + path, query, {"cookie": cookie} if cookie else {}, "127.0.0.1")


def test_the_login_redirect_names_the_client_the_callback_and_the_link_to_come_back_to():
    location, cookies = gate().login_redirect(facts("/v2/gh/a/b/HEAD", {"labpath": "x.ipynb"}))
    assert location.startswith("http://127.0.0.1:9/hub/api/oauth2/authorize?client_id=service-binder&")
    assert "redirect_uri=https%3A%2F%2Fbinder.example.org%2Fbinder%2Foauth_callback" in location
    state_cookie = cookies["binder-actors-oauth-state"]
    assert "HttpOnly" in state_cookie and "Path=/binder/" in state_cookie and "Secure" in state_cookie


def test_a_callback_without_the_browsers_state_cookie_is_refused():
    location, _ = gate().login_redirect(facts("/v2/gh/a/b/HEAD", {}))
    state = location.split("state=", 1)[1]
    callback = gate().callback(facts("/oauth_callback", {"state": state, "code": "c"}))
    status, message, cookies = asyncio.run(callback)
    assert status == 400 and "another browser" in message and not cookies


def test_a_forged_or_expired_login_cookie_is_no_login():
    one = gate()
    assert one._read_login(one._login("alice", "tok")) == ("alice", "tok")
    other = LoginGate(BinderConfig(auth_enabled=True, hub_url="http://127.0.0.1:9/", hub_api_token=SecretStr("x")))
    assert other._read_login(one._login("alice", "tok")) is None
    assert one._read_login("not-a-cookie") is None


def test_auth_settings_are_checked_and_the_password_stays_secret():
    with pytest.raises(ConfigError, match="at least 8"):
        BinderConfig(auth_enabled=True, auth_shared_password=SecretStr("short"))
    with pytest.raises(ConfigError, match="service-"):
        BinderConfig(auth_oauth_client_id="binder")
    with pytest.raises(ConfigError, match="BINDER_AUTH_ENABLED"):
        BinderConfig(auth_named_server_limit_per_user=2)
    config = BinderConfig(auth_enabled=True, auth_shared_password=SecretStr("a-long-password"))
    assert "a-long-password" not in repr(config) and "a-long-password" not in str(config_environment(config))


def test_a_malformed_cookie_of_another_application_does_not_hide_the_login():
    header = f'theme="unclosed; other app=x y; {LOGIN_COOKIE}=signed.value'
    assert _cookies(facts("/", {}, header)).get(LOGIN_COOKIE) == "signed.value"
