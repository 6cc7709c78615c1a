"""The pure parts of the HTTP API: launch metrics from events, the health cache, provider display configs, paths."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from binder_actors.config import BinderConfig, ProviderSettings
from binder_actors.events import BinderEvent, failed, progress
from binder_actors.models import (
    BuildSchedulerStats,
    CullerStatus,
    CullReport,
    HubHealth,
    ImageCacheStats,
    PoolStatus,
    RegistryHealth,
    ResolverStats,
)
from binder_actors.providers import PROVIDERS
from serve_app.health import AtMostEvery, HealthChecks
from serve_app.launches import parse_last_event_id
from serve_app.metrics import BinderMetrics, repo_labels
from serve_app.pages import Pages
from serve_app.paths import legacy_redirect, route_prefix
from serve_app.repoproviders import detect_regex, repoproviders

LABELS = {"provider": "Git", "repo": "https://example.org/repo.git"}
READY = BinderEvent(phase="ready", url="http://hub/user/x/", token="t")
BUILT = BinderEvent(phase="built", message="Built image, launching...\n", image_name="img:1")
FOUND = BinderEvent(phase="built", message="Found built image, launching...\n", image_name="img:1")


def samples(metrics: BinderMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: BinderMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def observe(events: list[tuple[float, BinderEvent]], build_only: bool = False, cut_after: int | None = None):
    """Run events through a BinderMetrics observer at the given clock times; returns the metrics."""
    metrics = BinderMetrics()
    times = iter([moment for moment, _ in events])

    async def source() -> AsyncIterator[BinderEvent]:
        for _, event in events:
            yield event

    async def consume() -> None:
        stream = metrics.observed(source(), LABELS, build_only=build_only, clock=lambda: next(times))
        seen = 0
        async for _ in stream:
            seen += 1
            if cut_after is not None and seen == cut_after:
                await stream.aclose()
                return

    asyncio.run(consume())
    return metrics


def test_a_launch_with_a_build_is_timed_as_binderhub_times_it():
    metrics = observe(
        [
            (0.0, progress("waiting", "Waiting for a build slot: position 1 in the queue")),
            (5.0, progress("fetching", "Fetching")),
            (9.0, progress("building", "pip install")),
            (95.0, BUILT),
            (96.0, progress("launching", "Launching server...")),
            (98.5, READY),
        ]
    )
    assert value(metrics, "binderhub_build_time_seconds_sum", status="success") == 90.0  # first fetching to built
    assert value(metrics, "binderhub_build_time_seconds_bucket", status="success", le="60.0") == 0
    assert value(metrics, "binderhub_build_time_seconds_bucket", status="success", le="120.0") == 1
    assert value(metrics, "binderhub_build_count_total", status="success", **LABELS) == 1
    assert value(metrics, "binderhub_launch_time_seconds_sum", status="success", retries="0") == 3.5
    assert value(metrics, "binderhub_launch_time_seconds_bucket", status="success", retries="0", le="5.0") == 1
    assert value(metrics, "binderhub_launch_count_total", status="success", **LABELS) == 1
    assert value(metrics, "binderhub_inprogress_builds") == 0
    assert value(metrics, "binderhub_inprogress_launches") == 0


def test_a_launch_of_a_built_image_counts_no_build():
    metrics = observe([(0.0, FOUND), (1.0, progress("launching", "Launching")), (2.0, READY)])
    assert value(metrics, "binderhub_build_time_seconds_count", status="success") is None
    assert value(metrics, "binderhub_launch_count_total", status="success", **LABELS) == 1


@pytest.mark.parametrize(
    ("failure", "build_status", "launch_status", "launch_timed"),
    [
        ((10.0, failed("installing requirements.txt failed", 500)), "failure", None, False),
        ((10.0, failed("Launch failed: the server stopped", 500)), "success", "failure", True),
        (
            (10.0, failed("Too many users running https://example.org/repo.git! Try again soon.", 429)),
            "success",
            "repo_quota",
            False,
        ),
        ((10.0, failed("Too many users on this BinderHub! Try again soon.", 429)), "success", "pod_quota", False),
    ],
)
def test_failures_are_counted_with_binderhubs_statuses(failure, build_status, launch_status, launch_timed):
    events = [(0.0, progress("fetching", "Fetching"))]
    if build_status == "success":
        events.append((5.0, BUILT))
    events.append(failure)
    metrics = observe(events)
    assert value(metrics, "binderhub_build_count_total", status=build_status, **LABELS) == 1
    if launch_status:
        assert value(metrics, "binderhub_launch_count_total", status=launch_status, **LABELS) == 1
    timed = value(metrics, "binderhub_launch_time_seconds_count", status="failure", retries="-1")
    assert (timed == 1) is launch_timed
    assert value(metrics, "binderhub_inprogress_launches") == 0


def test_a_build_only_stream_ends_at_built_without_a_launch():
    metrics = observe([(0.0, progress("building", "x")), (70.0, BUILT)], build_only=True)
    assert value(metrics, "binderhub_build_time_seconds_sum", status="success") == 70.0
    assert value(metrics, "binderhub_launch_count_total", status="success", **LABELS) is None
    assert value(metrics, "binderhub_inprogress_launches") == 0


def test_a_stream_cut_short_leaves_nothing_in_progress():
    metrics = observe([(0.0, progress("building", "x")), (1.0, progress("building", "y"))], cut_after=1)
    assert value(metrics, "binderhub_inprogress_builds") == 0
    assert value(metrics, "binderhub_build_time_seconds_count", status="success") is None


def test_resolve_failures_count_nothing():
    metrics = observe([(0.0, failed("Could not resolve ref", 404))])
    assert not [key for key in samples(metrics) if key[0].endswith("_total") and key[0].startswith("binderhub")]


def test_repo_labels_are_binderhubs_provider_name_and_repository_url():
    config = BinderConfig(providers=ProviderSettings(github_url="https://github.example"))
    assert repo_labels("gh", "org/repo/HEAD", config) == {
        "provider": "GitHub",
        "repo": "https://github.example/org/repo",
    }
    assert repo_labels("nope", "x/y", config) is None


def test_cluster_stats_are_exposed_and_left_out_when_an_actor_is_down():
    metrics = BinderMetrics()
    metrics.cluster.update(
        ImageCacheStats(hits=3, misses=2, known=1, missing=1),
        ResolverStats(upstream_calls=4, cache_hits=7, upstream_requests=4, cached=1, cached_misses=0),
        BuildSchedulerStats(builds_started=2, building=1, queued=5),
        "RayActorError",
    )
    assert value(metrics, "binder_image_cache_hits_total") == 3
    assert value(metrics, "binder_image_cache_misses_total") == 2
    assert value(metrics, "binder_ref_cache_hits_total") == 7
    assert value(metrics, "binder_build_queue_length") == 5
    assert value(metrics, "binder_culled_sessions_total") is None
    assert value(metrics, "binder_pool_hits_total") is None  # ServerPool not asked: left out


def test_pool_stats_are_exposed():
    metrics = BinderMetrics()
    pool = PoolStatus(enabled=True, free={"a": 2, "b": 1}, starting={"a": 1}, hits=5, misses=2, claim_seconds_total=0.5)
    metrics.cluster.update("x", "x", "x", "x", pool)
    assert value(metrics, "binder_pool_hits_total") == 5
    assert value(metrics, "binder_pool_misses_total") == 2
    assert value(metrics, "binder_pool_claim_seconds_total") == 0.5
    assert value(metrics, "binder_pool_free_servers") == 3
    assert value(metrics, "binder_pool_starting_servers") == 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_at_most_every_reuses_a_result_within_the_interval_and_shares_a_running_one():
    clock, calls = Clock(), []

    async def compute() -> int:
        calls.append(clock.now)
        await asyncio.sleep(0)
        return len(calls)

    async def scenario() -> list[int]:
        cached = AtMostEvery(compute, 15.0, clock=clock)
        together = await asyncio.gather(cached(), cached(), cached())
        clock.now = 14.9
        within = await cached()
        clock.now = 15.1
        after = await cached()
        return [*together, within, after]

    assert asyncio.run(scenario()) == [1, 1, 1, 1, 2]
    assert calls == [0.0, 15.1]


class Remote:
    """Stands in for an actor method: `.remote()` returns an awaitable answer (or raises)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def remote(self) -> Any:
        async def call() -> Any:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

        return call()


class Actor:
    def __init__(self, **methods: Any) -> None:
        self.__ray_ready__ = Remote(True)
        for name, answer in methods.items():
            setattr(self, name, Remote(answer))


def handles(hub: Any, registry: Any, sessions: Any) -> Any:
    from binder_actors.actors import ActorHandles

    return ActorHandles(
        ref_resolver=Actor(),
        image_cache=Actor(health=registry),
        build_scheduler=Actor(),
        session_manager=Actor(health=hub, session_count=len(sessions)),
        activity_monitor=Actor(status=CullerStatus(culled_total=0, last_sweep=CullReport())),
        server_pool=Actor(status=PoolStatus()),
    )


HUB_UP = HubHealth(ok=True, version="5.2")
REGISTRY_UP = RegistryHealth(ok=True, registry="local")


@pytest.mark.parametrize(
    ("hub", "registry", "sessions", "max_sessions", "ok"),
    [
        (HUB_UP, REGISTRY_UP, [], 10, True),
        (HubHealth(ok=False, error="JupyterHub cannot be reached"), REGISTRY_UP, [], 10, False),
        (HUB_UP, RegistryHealth(ok=False, registry="local", error="connection refused"), [], 10, False),
        (HUB_UP, ConnectionError("registry actor gone"), [], 10, False),
        (HUB_UP, REGISTRY_UP, ["s1", "s2", "s3"], 2, True),  # over quota: reported, still healthy
    ],
)
def test_health_is_not_ok_when_a_hard_check_fails(hub, registry, sessions, max_sessions, ok):
    checks = HealthChecks(handles(hub, registry, sessions), BinderConfig(max_sessions=max_sessions))
    report = asyncio.run(checks.report())
    assert report["ok"] is ok
    by_service = {check["service"]: check for check in report["checks"]}
    assert set(by_service) == {"Registry", "JupyterHub", "Session quota", *PROVIDER_ACTORS}
    quota = by_service["Session quota"]
    assert (quota["sessions"], quota["quota"], quota["ok"]) == (
        len(sessions),
        max_sessions,
        len(sessions) <= max_sessions,
    )


def test_health_checks_keep_binderhubs_shape_with_an_error_only_when_there_is_one():
    checks = HealthChecks(handles(HUB_UP, REGISTRY_UP, []), BinderConfig(max_sessions=10))
    report = asyncio.run(checks.report())
    by_service = {check["service"]: check for check in report["checks"]}
    assert by_service["JupyterHub"] == {"service": "JupyterHub", "ok": True, "version": "5.2"}
    assert by_service["Registry"] == {"service": "Registry", "ok": True, "registry": "local"}
    assert report["culler"] == {
        "culled_total": 0,
        "last_sweep": {"checked": 0, "culled": [], "errors": 0, "finished": None},
    }
    assert report["pool"]["enabled"] is False and report["pool"]["hits"] == 0
    down = HealthChecks(handles(HubHealth(ok=False, error="refused"), REGISTRY_UP, []), BinderConfig())
    assert {"service": "JupyterHub", "ok": False, "error": "refused"} in asyncio.run(down.report())["checks"]


PROVIDER_ACTORS = {
    "ref_resolver",
    "image_cache",
    "build_scheduler",
    "session_manager",
    "activity_monitor",
    "server_pool",
}


def js_to_python(regex: str) -> str:
    return regex.replace("(?<", "(?P<")


@pytest.mark.parametrize(
    ("prefix", "url", "groups"),
    [
        ("gh", "https://github.com/org/repo", {"repo": "org/repo", "ref": None}),
        ("gh", "https://github.com/org/repo.git", {"repo": "org/repo", "ref": None}),
        ("gh", "https://github.com/org/repo/tree/main", {"repo": "org/repo", "ref": "main"}),
        (
            "gh",
            "https://github.com/org/repo/blob/v1/nb/index.ipynb",
            {"repo": "org/repo", "filepath": "nb/index.ipynb"},
        ),
        ("gh", "https://gitlab.com/org/repo", None),
        ("gl", "https://gitlab.com/group/sub/project", {"repo": "group/sub/project", "ref": None}),
        ("gl", "https://gitlab.com/group/project/-/tree/dev", {"repo": "group/project", "ref": "dev"}),
    ],
)
def test_detect_regexes_take_pasted_urls_apart(prefix, url, groups):
    match = re.match(js_to_python(detect_regex(prefix, ProviderSettings())), url)
    if groups is None:
        assert match is None
    else:
        assert match is not None
        assert {name: match.group(name) for name in groups} == groups


def test_every_provider_has_a_display_config():
    configs = repoproviders(ProviderSettings(github_url="https://github.example.org"))
    assert [c["id"] for c in configs] == list(PROVIDERS)
    by_id = {c["id"]: c for c in configs}
    assert by_id["gh"]["displayName"] == "GitHub"
    assert by_id["gh"]["repo"]["label"] == "GitHub repository name or URL"
    assert by_id["gh"]["ref"] == {"enabled": True, "default": "HEAD", "label": "Git ref (branch, tag, or commit)"}
    assert "github\\.example\\.org" in by_id["gh"]["detect"]["regex"]
    assert by_id["git"]["repo"]["urlEncode"] is True
    assert by_id["zenodo"]["ref"]["enabled"] is False and "detect" not in by_id["zenodo"]
    assert by_id["zenodo"]["labels"]["ref_prop_disabled"] is True


@pytest.mark.parametrize(
    ("base", "path", "target"),
    [
        ("/", "", "/v2/gh/org/repo/master"),
        ("/", "/", "/v2/gh/org/repo/master"),
        ("/", "/notebooks/index.ipynb", "/v2/gh/org/repo/master?urlpath=%2Fnotebooks%2Findex.ipynb"),
        ("/binder/", "/tree", "/binder/v2/gh/org/repo/master?urlpath=%2Ftree"),
    ],
)
def test_legacy_links_open_master_with_the_path_as_urlpath(base, path, target):
    assert legacy_redirect(base, "org", "repo", path) == target


@pytest.mark.parametrize(
    ("base_url", "prefix", "path"),
    [
        ("/", "/", "/"),
        ("/binder/", "/binder", "/binder/"),
        ("binder", "/binder", "/binder/"),
        ("/a/b", "/a/b", "/a/b/"),
    ],
)
def test_base_url_becomes_serves_route_prefix(base_url, prefix, path):
    config = BinderConfig(base_url=base_url)
    assert config.base_path == path
    assert route_prefix(config.base_path) == prefix
    assert config.launch_host == f"http://127.0.0.1:8000{path}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0123456789abcdef.3", ("0123456789abcdef", 3)),
        (" 0123456789abcdef.12 ", ("0123456789abcdef", 12)),
        ("0123456789abcdef.\xb2", None),  # latin-1 '²' is a Unicode digit, not a number int() takes
        ("0123456789abcdef." + "9" * 5000, None),  # over Python's integer string limit
        ("0123456789ABCDEF.3", None),
        ("0123456789abcde.3", None),
        ("0123456789abcdef", None),
        ("", None),
        (None, None),
    ],
)
def test_last_event_id_is_ours_or_ignored(header, expected):
    assert parse_last_event_id(header) == expected


def test_importing_a_serve_app_module_builds_no_application_until_app_is_asked_for():
    probe = (
        "import sys, serve_app.paths\n"
        "assert 'serve_app.ingress' not in sys.modules, 'importing serve_app.paths loaded the ingress'\n"
        "import serve_app\n"
        "assert serve_app.app is serve_app.app\n"
        "print(type(serve_app.app).__name__)\n"
    )
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert answer.stdout.strip() == "Application"


def script_json(page: str, element_id: str) -> Any:
    """A `<script type="application/json">` element's JSON as a browser reads it: the raw text up to
    the first `</script` (entities are not decoded in a script element), parsed."""
    text = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script', page, re.S | re.I)[1]
    return json.loads(text)


@pytest.mark.parametrize(
    "redirect",
    [
        "lab/tree/a&b.ipynb?x=1&y=2",
        'doc/tree/a&b<c"dé.ipynb',
        "tree/</script><script>alert(1)</script>",
        "tree/it's &amp; <!-- -->.ipynb",
        "notebooks/日本語 ✓.ipynb",
    ],
)
def test_launch_page_settings_reach_the_script_unchanged(redirect):
    settings = {"buildUrl": "../../../build/git/x/HEAD?build_token=a.b&c", "redirectPath": redirect}
    page = Pages().launch("git/x/HEAD", settings)
    assert script_json(page, "binder-settings") == settings
    assert page.count("</script") == 2  # the settings element's and the script's own: nothing closes one early


def test_launch_and_error_pages_show_the_spec_and_message_as_text():
    assert "<title>Binder: starting git/&lt;b&gt;x&amp;y/HEAD</title>" in Pages().launch("git/<b>x&y/HEAD", {})
    assert '<p class="error">ref &#39;&lt;main&gt;&#39; not found</p>' in Pages().error("ref '<main>' not found")
