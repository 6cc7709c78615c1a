"""Access control decisions (banned networks, client address, rate limit, build tokens, Accept) and the middleware."""

from __future__ import annotations

import time
import warnings

import jwt
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from binder_actors.config import BinderConfig
from binder_actors.providers import InvalidSpec
from serve_app.access import (
    AccessControl,
    AccessPolicy,
    InvalidBuildToken,
    RateLimiter,
    RateLimitExceeded,
    accepts_event_stream,
    build_only_requested,
    client_ip,
    issue_build_token,
    matching_network,
    parse_networks,
    token_origin,
    verify_build_token,
)

with warnings.catch_warnings():  # Starlette's TestClient warns it will move to httpx2; it drives ASGI apps as it is
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "a-build-token-secret-of-at-least-32-bytes"
BANNED = parse_networks({"192.0.2.0/24": "TEST-NET-1", "2001:db8::/32": "the documentation range", "10.1.2.3": "one"})


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        ("192.0.2.1", "TEST-NET-1"),
        ("192.0.2.255", "TEST-NET-1"),
        ("192.0.3.1", None),
        ("::ffff:192.0.2.7", "TEST-NET-1"),  # an IPv4 client seen through a dual-stack socket
        ("2001:db8:1::5", "the documentation range"),
        ("[2001:db8::1]", "the documentation range"),
        ("2001:db9::1", None),
        ("10.1.2.3", "one"),
        ("10.1.2.4", None),
        ("not-an-address", None),
        ("", None),
    ],
)
def test_banned_networks_match_ipv4_and_ipv6(ip, message):
    match = matching_network(ip, BANNED)
    assert (match[1] if match else None) == message


def test_a_list_of_networks_uses_each_cidr_as_its_message():
    assert parse_networks(["198.51.100.0/24"])[0][1] == "198.51.100.0/24"


PROXIES = parse_networks(["127.0.0.1/32", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        ("203.0.113.9", None, PROXIES, "203.0.113.9"),
        ("203.0.113.9", "192.0.2.1", PROXIES, "203.0.113.9"),  # not a proxy of ours: the header is a lie
        ("127.0.0.1", "192.0.2.1", [], "127.0.0.1"),  # no trusted proxies: the header is never read
        ("127.0.0.1", "192.0.2.1", PROXIES, "192.0.2.1"),
        ("127.0.0.1", "198.51.100.1, 192.0.2.1, 10.0.0.5", PROXIES, "192.0.2.1"),  # the rightmost untrusted hop
        ("127.0.0.1", "10.0.0.7, 10.0.0.5", PROXIES, "10.0.0.7"),  # all proxies: the leftmost
        ("127.0.0.1", " , ", PROXIES, "127.0.0.1"),
    ],
)
def test_client_address_trusts_forwarded_for_only_from_trusted_proxies(peer, forwarded_for, trusted, expected):
    assert client_ip(peer, forwarded_for, trusted) == expected


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("requests_at", "limit", "remaining", "reset"),
    [
        ([1000.0], 3, [2], 4600),
        ([1000.0, 1000.5, 2000.0], 3, [2, 1, 0], 4600),  # one window from the first request
        ([1000.0, 4599.0, 4600.0], 2, [1, 0, 1], 8200),  # the window ended at 4600: a new one, in full
        ([1000.4, 1001.0], 5, [4, 3], 4601),  # reset is a whole second, rounded up
    ],
)
def test_rate_limit_window_math(requests_at, limit, remaining, reset):
    clock = Clock(requests_at[0])
    limiter = RateLimiter(limit, clock=clock)
    states = []
    for moment in requests_at:
        clock.now = moment
        states.append(limiter.increment("192.0.2.1"))
    assert [s.remaining for s in states] == remaining
    assert states[-1].reset == reset
    assert states[-1].headers() == {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining[-1]),
        "x-ratelimit-reset": str(reset),
    }


def test_rate_limit_refuses_the_request_over_the_limit_and_says_when_to_retry():
    clock = Clock(1000.0)
    limiter = RateLimiter(2, clock=clock)
    limiter.increment("a")
    limiter.increment("a")
    limiter.increment("b")  # every address has its own allowance
    clock.now = 1600.0
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.increment("a")
    assert refused.value.retry_after == 3000
    assert refused.value.state.headers()["x-ratelimit-remaining"] == "0"
    assert "try again in 3000 seconds" in str(refused.value)


def test_rate_limit_forgets_finished_windows():
    clock = Clock(0.0)
    limiter = RateLimiter(1, clock=clock)
    for n in range(100):
        limiter.increment(f"client-{n}")
    clock.now = 10_000.0
    limiter.increment("late")
    assert list(limiter._windows) == ["late"]


@pytest.mark.parametrize(
    ("audience", "origin", "issued_at", "check_origin", "error"),
    [
        ("gh/org/repo/HEAD", "binder.example.org", None, True, None),
        ("gh/org/other/HEAD", "binder.example.org", None, True, "another repository"),
        ("gh/org/repo/HEAD", "evil.example.com", None, True, "another site"),
        ("gh/org/repo/HEAD", "evil.example.com", None, False, None),
        ("gh/org/repo/HEAD", "binder.example.org", time.time() - 700, True, "expired"),
    ],
)
def test_build_token_checks_audience_origin_and_expiry(audience, origin, issued_at, check_origin, error):
    token = issue_build_token(SECRET, "gh/org/repo/HEAD", "binder.example.org", 600, now=issued_at)
    if error is None:
        claims = verify_build_token(token, SECRET, audience, origin, check_origin=check_origin)
        assert claims["aud"] == "gh/org/repo/HEAD"
    else:
        with pytest.raises(InvalidBuildToken, match=error):
            verify_build_token(token, SECRET, audience, origin, check_origin=check_origin)


@pytest.mark.parametrize(
    "token",
    [
        issue_build_token("another-secret-of-at-least-32-bytes-long", "gh/a/b/HEAD", "h", 600),
        jwt.encode({"aud": "gh/a/b/HEAD", "origin": "h"}, SECRET, algorithm="HS256"),  # no expiry: refused
        "not.a.token",
        jwt.encode({"exp": int(time.time()) + 60, "aud": "gh/a/b/HEAD", "origin": "h"}, "x" * 48, algorithm="HS384"),
    ],
)
def test_build_tokens_not_ours_are_not_valid(token):
    with pytest.raises(InvalidBuildToken):
        verify_build_token(token, SECRET, "gh/a/b/HEAD", "h")


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({"origin": "https://binder.example.org:8443", "host": "internal:8000"}, "binder.example.org:8443"),
        ({"host": "binder.example.org"}, "binder.example.org"),
        ({}, ""),
    ],
)
def test_token_origin_is_the_origin_header_then_the_host(headers, origin):
    assert token_origin(headers) == origin


@pytest.mark.parametrize(
    ("accept", "accepted"),
    [
        (None, True),
        ("", True),
        ("*/*", True),
        ("text/event-stream", True),
        ("text/*", True),
        ("text/html, application/xhtml+xml, */*;q=0.8", True),
        ("text/html", False),
        ("application/json", False),
        ("text/event-stream;q=0", False),
        ("*/*, text/event-stream;q=0", False),  # the most specific range decides
        ("text/*;q=0, text/event-stream", True),
        ("text/event-stream;q=bogus", False),
    ],
)
def test_only_an_accept_header_that_excludes_event_streams_is_refused(accept, accepted):
    assert accepts_event_stream(accept) is accepted


@pytest.mark.parametrize(
    ("value", "api_only", "expected"),
    [(None, False, False), ("false", False, False), ("true", True, True), ("True", True, True)],
)
def test_build_only_is_read_from_the_query(value, api_only, expected):
    assert build_only_requested(value, api_only) is expected


def test_build_only_without_api_only_mode_says_how_to_turn_it_on():
    with pytest.raises(InvalidSpec, match="BINDER_API_ONLY"):
        build_only_requested("true", api_only=False)


# The middleware, on a plain Starlette app: no Serve, no actors.


def client_for(**settings: object) -> TestClient:
    config = BinderConfig(**settings)
    policy = AccessPolicy(config)

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    paths = ("/", "/build/{rest:path}", "/v2/{rest:path}", "/versions", "/metrics", "/api/repoproviders", "/health")
    routes = [Route(path, ok) for path in paths]
    return TestClient(AccessControl(Starlette(routes=routes), policy=lambda: policy), client=("192.0.2.10", 5000))


def test_middleware_refuses_a_banned_network_everywhere_but_versions():
    client = client_for(ban_networks={"192.0.2.0/24": "TEST-NET-1"})
    refused = client.get("/health")
    assert refused.status_code == 403
    assert refused.json() == {"message": "Requests from TEST-NET-1 are not allowed."}
    build = client.get("/build/gh/org/repo/HEAD")
    assert build.status_code == 403 and build.headers["content-type"] == "text/event-stream"
    assert '"phase": "failed"' in build.text and '"status_code": 403' in build.text
    assert client.get("/versions").status_code == 200


def test_middleware_rate_limits_build_with_headers_and_a_429():
    client = client_for(rate_limit=2)
    first, second, third = (client.get("/build/gh/org/repo/HEAD") for _ in range(3))
    assert [r.status_code for r in (first, second, third)] == [200, 200, 429]
    assert first.headers["x-ratelimit-limit"] == "2" and first.headers["x-ratelimit-remaining"] == "1"
    assert third.headers["x-ratelimit-remaining"] == "0" and int(third.headers["retry-after"]) > 3500
    assert "limit of this Binder" in third.text
    assert client.get("/v2/gh/org/repo/HEAD").status_code == 200  # pages are not launches


def test_middleware_lets_a_valid_build_token_past_the_rate_limit():
    client = client_for(rate_limit=1, build_token_secret=SecretStr(SECRET))
    token = issue_build_token(SECRET, "gh/org/repo/HEAD", "testserver", 600)
    answers = [client.get(f"/build/gh/org/repo/HEAD?build_token={token}") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "x-ratelimit-remaining" not in answers[0].headers
    wrong = client.get(f"/build/gh/org/other/HEAD?build_token={token}")
    assert wrong.status_code == 403 and "another repository" in wrong.text
    assert SECRET not in wrong.text


def test_middleware_refuses_an_accept_without_event_streams_with_406():
    client = client_for()
    refused = client.get("/build/gh/org/repo/HEAD", headers={"Accept": "text/html"})
    assert refused.status_code == 406 and "text/event-stream" in refused.json()["message"]
    assert client.get("/build/gh/org/repo/HEAD", headers={"Accept": "*/*"}).status_code == 200


def test_middleware_adds_cors_to_build_and_api_routes_and_answers_preflight():
    client = client_for(cors_allow_origin="https://site.example")
    for path in ("/build/gh/org/repo/HEAD", "/api/repoproviders", "/versions", "/health"):
        assert client.get(path).headers["access-control-allow-origin"] == "https://site.example", path
    assert "access-control-allow-origin" not in client.get("/").headers
    preflight = client.options("/build/gh/org/repo/HEAD")
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-headers"] == "cache-control"


def test_api_only_mode_serves_no_pages():
    client = client_for(api_only=True)
    assert client.get("/").status_code == 404
    assert "API-only" in client.get("/v2/gh/org/repo/HEAD").json()["message"]
    assert client.get("/build/gh/org/repo/HEAD").status_code == 200
    assert client.get("/metrics").status_code == 200
