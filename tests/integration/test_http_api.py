"""BinderHub's HTTP API surface against the real stack: routes, headers, metrics, and access control.

Access control needs other settings than the session stack's (which has it all off). Rather than a
second stack, two more Serve applications run in the same Serve instance, on their own base URLs,
over the same actors: `/limited/` (rate limit, banned network, trusted proxy, build tokens, CORS)
and `/api-only/` (BINDER_API_ONLY). That also proves the base URL works as Serve's route_prefix.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import quote, urljoin

import httpx
import pytest
from pydantic import SecretStr
from ray import serve

from serve_app import build_app
from serve_app.embedded import EmbeddedStack
from serve_app.paths import route_prefix
from tests.helpers import git_spec, read_events, wait_for

TOKEN_SECRET = "integration-test-build-token-secret-0123456789"


def sse_events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def deploy(stack: EmbeddedStack, name: str, **settings: object) -> Iterator[str]:
    config = stack.config.with_settings(**settings)
    serve.run(build_app(config), name=name, route_prefix=route_prefix(config.base_path))
    url = f"http://{config.host}:{config.port}{config.base_path}"
    wait_for(lambda: httpx.get(url + "versions", timeout=30).status_code == 200, 60, f"{name} to serve")
    yield url
    serve.delete(name)


@pytest.fixture(scope="module")
def limited_url(stack: EmbeddedStack) -> Iterator[str]:
    yield from deploy(
        stack,
        "binder-limited",
        base_url="/limited/",
        rate_limit=2,
        ban_networks={"203.0.113.0/24": "TEST-NET-3"},
        trusted_proxies=["127.0.0.1/32", "::1/128"],
        build_token_secret=SecretStr(TOKEN_SECRET),
        cors_allow_origin="https://site.example",
    )


@pytest.fixture(scope="module")
def api_only_url(stack: EmbeddedStack) -> Iterator[str]:
    yield from deploy(stack, "binder-api-only", base_url="/api-only/", api_only=True)


def test_build_stream_is_an_uncached_event_stream(base_url):
    for accept in ("*/*", "text/event-stream", "text/html, */*;q=0.1"):
        response = httpx.get(base_url + "build/nope/x/y/HEAD", headers={"Accept": accept}, timeout=30)
        assert response.status_code == 200, accept
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert sse_events(response)[-1]["phase"] == "failed"


def test_build_refuses_a_client_that_does_not_accept_event_streams(base_url):
    response = httpx.get(base_url + "build/nope/x/y/HEAD", headers={"Accept": "text/html"}, timeout=30)
    assert response.status_code == 406
    assert "Accept: text/event-stream" in response.json()["message"]


def test_build_only_needs_api_only_mode(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    events = read_events(base_url, f"build/git/{git_spec(repo_url, 'HEAD')}?build_only=true")
    assert [e["phase"] for e in events] == ["failed"]
    assert events[0]["status_code"] == 400 and "BINDER_API_ONLY" in events[0]["message"]


def test_health_reports_registry_hub_quota_and_actors(base_url, stack):
    response = httpx.get(base_url + "health", timeout=30)
    assert response.status_code == 200
    checks = {check["service"]: check for check in response.json()["checks"]}
    assert checks["Registry"] == {"service": "Registry", "ok": True, "registry": "local"}
    assert checks["JupyterHub"]["ok"] is True and checks["JupyterHub"]["version"]
    quota = checks["Session quota"]
    assert quota["quota"] == stack.config.quotas.max_sessions and quota["sessions"] >= 0
    assert all(checks[name]["ok"] for name in ("ref_resolver", "image_cache", "session_manager"))


def test_versions_has_binderhubs_shape(base_url):
    body = httpx.get(base_url + "versions", timeout=30).json()
    assert set(body) == {"builder_info", "binderhub"}
    assert body["builder_info"]["builder"] == "local"
    assert re.match(r"\d+\.\d+", body["builder_info"]["jupyterhub"])


def test_repoproviders_lists_every_provider_display_config(base_url):
    providers = httpx.get(base_url + "api/repoproviders", timeout=30).json()
    assert [p["id"] for p in providers][:4] == ["gh", "gist", "gl", "git"]
    github = providers[0]
    assert github["displayName"] == "GitHub" and github["ref"]["enabled"] is True and "regex" in github["detect"]


@pytest.mark.parametrize(("path", "width"), [("badge.svg", "92"), ("badge_logo.svg", "109")])
def test_badges_are_svg_launch_binder_images(base_url, path, width):
    response = httpx.get(base_url + path, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    svg = ET.fromstring(response.text)
    assert (svg.get("width"), svg.get("height")) == (width, "20")
    assert [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")] == ["launch", "binder"]


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("repo/org/repo", "/v2/gh/org/repo/master"),
        ("repo/org/repo/", "/v2/gh/org/repo/master"),
        ("repo/org/repo/notebooks/a.ipynb", "/v2/gh/org/repo/master?urlpath=%2Fnotebooks%2Fa.ipynb"),
    ],
)
def test_legacy_repo_links_redirect_to_v2(base_url, path, location):
    response = httpx.get(base_url + path, timeout=30, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == location


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_a_launch_in_binderhubs_names(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    before = httpx.get(base_url + "metrics", timeout=30).text
    launched = metric(before, "binderhub_launch_count_total", status="success", provider="Git", repo=repo_url) or 0
    ready = read_events(base_url, f"build/git/{git_spec(repo_url, 'HEAD')}")[-1]
    assert ready["phase"] == "ready", ready

    response = httpx.get(base_url + "metrics", timeout=30)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert metric(text, "binderhub_launch_count_total", status="success", provider="Git", repo=repo_url) == launched + 1
    assert metric(text, "binderhub_launch_time_seconds_count", status="success", retries="0") >= 1
    assert metric(text, "binderhub_launch_time_seconds_bucket", status="success", retries="0", le="600.0") >= 1
    assert metric(text, "binderhub_inprogress_launches") == 0
    assert "# TYPE binderhub_build_time_seconds histogram" in text
    assert metric(text, "binder_image_cache_hits_total") >= 1
    assert metric(text, "binder_ref_cache_hits_total") is not None
    assert metric(text, "binder_build_queue_length") == 0
    assert metric(text, "binder_culled_sessions_total") is not None


def build_from(ip: str) -> dict[str, str]:
    """Headers of a request our trusted proxy (127.0.0.1) forwards for `ip`."""
    return {"Accept": "text/event-stream", "X-Forwarded-For": ip}


def test_rate_limit_refuses_the_third_launch_of_an_address_within_the_hour(limited_url):
    path = limited_url + "build/nope/x/y/HEAD"
    answers = [httpx.get(path, headers=build_from("198.51.100.7"), timeout=30) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[0].headers["x-ratelimit-limit"] == "2"
    assert answers[0].headers["x-ratelimit-reset"] == answers[2].headers["x-ratelimit-reset"]
    refusal = sse_events(answers[2])[0]
    assert refusal["phase"] == "failed" and refusal["status_code"] == 429 and "try again in" in refusal["message"]
    other = httpx.get(path, headers=build_from("198.51.100.8"), timeout=30)
    assert other.status_code == 200, "every address has its own allowance"


def test_banned_network_gets_403_through_a_trusted_proxy(limited_url):
    refused = httpx.get(limited_url + "api/repoproviders", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30)
    assert refused.status_code == 403
    assert refused.json()["message"] == "Requests from TEST-NET-3 are not allowed."
    assert (
        httpx.get(limited_url + "versions", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30).status_code == 200
    )


def test_cors_header_on_build_and_api_routes(limited_url):
    for path in ("api/repoproviders", "versions", "build/nope/x/y/HEAD"):
        response = httpx.get(limited_url + path, headers=build_from("198.51.100.20"), timeout=30)
        assert response.headers["access-control-allow-origin"] == "https://site.example", path


def test_launch_page_build_token_skips_the_rate_limit(limited_url, git_server):
    spec = git_spec(git_server.url("no-such-repository"), "HEAD")
    page = httpx.get(limited_url + f"v2/git/{spec}", timeout=30)
    assert page.status_code == 200
    settings = json.loads(re.search(r'<script id="binder-settings"[^>]*>(.*?)</script>', page.text, re.S)[1])
    build_url = urljoin(str(page.url), settings["buildUrl"])
    assert "build_token=" in build_url and TOKEN_SECRET not in page.text
    answers = [httpx.get(build_url, headers=build_from("198.51.100.30"), timeout=60) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "x-ratelimit-remaining" not in answers[0].headers
    assert "Could not reach the repository" in sse_events(answers[0])[-1]["message"]
    forged = build_url.replace("no-such-repository", "another")
    refused = httpx.get(forged, headers=build_from("198.51.100.31"), timeout=30)
    assert refused.status_code == 403 and "Invalid build token" in refused.text


def test_api_only_mode_serves_build_only_and_no_pages(api_only_url, requirements_repo):
    repo_url, _ = requirements_repo
    assert httpx.get(api_only_url, timeout=30).status_code == 404
    assert httpx.get(api_only_url + "about", timeout=30).status_code == 404
    assert httpx.get(api_only_url + f"v2/git/{quote(repo_url, safe='')}/HEAD", timeout=30).status_code == 404
    events = read_events(api_only_url, f"build/git/{git_spec(repo_url, 'HEAD')}?build_only=true")
    assert [e["phase"] for e in events[-2:]] == ["built", "ready"], events[-2:]  # BinderHub's build_only ending
    assert events[-1]["message"] == "Done! Image built\n" and events[-1]["imageName"] == events[-2]["imageName"]
    assert "url" not in events[-1] and all(e["phase"] != "launching" for e in events)
