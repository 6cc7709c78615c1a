"""The pool's pure core: static sizes, the adaptive share of the budget, what a refill pass starts and drains."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from binder_actors.actors.activity_monitor import cull_verdict
from binder_actors.admission import Admission, Refusal, Step
from binder_actors.config import BinderConfig, ConfigError
from binder_actors.hub_models import MANAGED_GROUP, BinderOptions, HubUser
from binder_actors.hub_records import launch_options, template_of
from binder_actors.models import LaunchRequest
from binder_actors.pool import (
    LaunchWindow,
    PoolCounts,
    PoolRule,
    adaptive_targets,
    plan_pool,
    pool_targets,
    static_size,
)
from binder_actors.providers.base import ResolvedRef

RULES = [PoolRule("^org/course", 3), PoolRule("^org/course-big", 5), PoolRule("^other/", 0)]


@pytest.mark.parametrize(
    ("spec", "size"),
    [
        ("org/course/HEAD", 3),
        ("ORG/Course/main", 3),  # case-insensitive, as spec_config
        ("org/course-big/HEAD", 5),  # the last matching rule wins
        ("other/repo/HEAD", 0),
        ("x/org/course/HEAD", 0),  # anchored at the start
    ],
)
def test_static_size_is_the_last_matching_rule(spec: str, size: int) -> None:
    assert static_size(RULES, spec) == size


@pytest.mark.parametrize(
    ("launches", "budget", "targets"),
    [
        ({}, 5, {}),
        ({"a": 10}, 3, {"a": 3}),
        ({"a": 1}, 5, {"a": 1}),  # one server per launch in the window at most
        ({"a": 5, "b": 1}, 3, {"a": 2, "b": 1}),  # a round at a time: the second image gets one too
        ({"a": 5, "b": 5, "c": 5}, 2, {"a": 1, "b": 1}),  # ties by name
        ({"a": 2, "b": 9}, 1, {"b": 1}),  # the most launched first
        ({"a": 3}, 0, {}),
    ],
)
def test_adaptive_targets_share_the_budget_among_the_most_launched(
    launches: dict[str, int], budget: int, targets: dict[str, int]
) -> None:
    assert adaptive_targets(launches, budget) == targets


@pytest.mark.parametrize(
    ("static", "launches", "max_total", "room", "targets"),
    [
        ({"a": 3}, {}, 0, 100, {"a": 3}),  # static only: no budget, uncapped
        ({"a": 3}, {"b": 4}, 0, 100, {"a": 3}),  # no budget: no adaptive mode
        ({"a": 3}, {"b": 4}, 5, 100, {"a": 3, "b": 2}),  # the adaptive mode gets what static leaves
        ({"a": 3}, {"a": 9}, 5, 100, {"a": 3}),  # static then adaptive for the same image: the larger
        ({"a": 3, "b": 3}, {}, 4, 100, {"a": 3, "b": 1}),  # the budget caps static sizes in rule order
        ({"a": 3}, {"b": 4}, 10, 2, {"a": 2}),  # the session quota's room caps everything
        ({"a": 3}, {}, 0, -3, {}),  # no room at all
    ],
)
def test_pool_targets(
    static: dict[str, int], launches: dict[str, int], max_total: int, room: int, targets: dict[str, int]
) -> None:
    assert pool_targets(static, launches, max_total, room) == targets


@pytest.mark.parametrize(
    ("targets", "current", "max_starts", "start", "drain"),
    [
        ({"a": 2}, {}, 10, {"a": 2}, {}),
        ({"a": 2}, {"a": PoolCounts(free=1, starting=1)}, 10, {}, {}),  # starting ones count
        ({"a": 2}, {"a": PoolCounts(free=4)}, 10, {}, {"a": 2}),
        ({}, {"old": PoolCounts(free=2, starting=1)}, 10, {}, {"old": 2}),  # a replaced image: every free one
        ({"a": 1}, {"a": PoolCounts(starting=3)}, 10, {}, {}),  # starting ones are drained once free
        ({"a": 3, "b": 1}, {}, 2, {"a": 1, "b": 1}, {}),  # at most max_starts, the most missing first
        ({"a": 3, "b": 1}, {}, 0, {}, {}),
    ],
)
def test_plan_pool_starts_the_missing_and_drains_the_excess(
    targets: dict[str, int],
    current: dict[str, PoolCounts],
    max_starts: int,
    start: dict[str, int],
    drain: dict[str, int],
) -> None:
    plan = plan_pool(targets, current, max_starts)
    assert (plan.start, plan.drain) == (start, drain)


def test_launch_window_forgets_launches_older_than_its_length() -> None:
    now = [0.0]
    window = LaunchWindow(60, clock=lambda: now[0])
    window.record("a")
    now[0] = 30
    window.record("a")
    window.record("b")
    assert window.counts() == {"a": 2, "b": 1}
    now[0] = 61
    assert window.counts() == {"a": 1, "b": 1}
    now[0] = 200
    assert window.counts() == {}


def pooled_user(name: str, *, claimed: bool) -> HubUser:
    groups = [MANAGED_GROUP, "binder-actors-pool-binder", *(["binder-actors-claim-k"] if claimed else [])]
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    server = {"ready": True, "url": f"/user/{name}/", "started": started, "user_options": {"repo_url": "r"}}
    return HubUser.model_validate({"name": name, "groups": groups, "servers": {"": server}})


def test_admission_counts_a_pooled_server_only_once_claimed() -> None:
    admission = Admission(max_sessions=1, quota_of=lambda spec, provider: 0, clock=lambda: 100.0)
    admission.listed([pooled_user("waiting", claimed=False)], asked=100.0)
    assert admission.sessions() == 0
    assert admission.decide("new", "r", "s", listed=True, looked_up=True) is Step.ADMITTED
    admission = Admission(max_sessions=1, quota_of=lambda spec, provider: 0, clock=lambda: 100.0)
    admission.listed([pooled_user("taken", claimed=True)], asked=100.0)
    assert admission.sessions() == 1
    assert isinstance(admission.decide("new", "r", "s", listed=True, looked_up=True), Refusal)


@pytest.mark.parametrize(("claimed", "culled"), [(False, False), (True, True)])
def test_the_culler_leaves_an_unclaimed_pooled_server_alone(claimed: bool, culled: bool) -> None:
    now = datetime(2026, 2, 1, tzinfo=timezone.utc)  # a month after the server started: long idle
    assert cull_verdict(pooled_user("u", claimed=claimed), now, timeout=600).cull is culled


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"pool": '[{"pattern": "(", "size": 1}]'}, "BINDER_POOL"),
        ({"pool": '[{"pattern": "^a/", "size": -1}]'}, "BINDER_POOL"),
        ({"pool": '{"pattern": "^a/"}'}, "BINDER_POOL"),
        ({"pool_max": "-1"}, "BINDER_POOL_MAX"),
        ({"pool_window": "0"}, "BINDER_POOL_WINDOW"),
    ],
)
def test_bad_pool_settings_are_refused_at_load_naming_the_setting(
    settings: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(f"BINDER_{name.upper()}", value)
    with pytest.raises(ConfigError, match=named):
        BinderConfig()


def test_the_pool_is_off_by_default_and_on_with_a_rule_or_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not BinderConfig().pool.enabled
    monkeypatch.setenv("BINDER_POOL", '[{"pattern": "^org/course/", "size": 5}]')
    config = BinderConfig()
    assert config.pool.enabled and config.pool.rules[0].size == 5
    assert BinderConfig(pool_max=3).pool.enabled


def test_a_pooled_servers_options_give_back_the_launch_it_was_started_for() -> None:
    resolved = ResolvedRef(
        provider="gh",
        spec="org/course/HEAD",
        repo_url="https://github.com/org/course",
        unresolved_ref="HEAD",
        resolved_ref="abc123",
        build_slug="slug",
        ref_url="https://github.com/org/course/tree/abc123",
        persistent_spec="org/course/abc123",
    )
    launch = LaunchRequest(
        image="r2d-slug:abc123",
        resolved=resolved,
        binder_request="v2/gh/org/course/HEAD",
        binder_persistent_request="v2/gh/org/course/abc123",
        launch_key="secret-key",
    )
    options = launch_options(launch, token="t", launch_host="https://b/", pool="binder-actors-pool-binder")
    assert (options.binder_pool, options.binder_launch_key, options.token) == (
        "binder-actors-pool-binder",
        "secret-key",
        "t",
    )
    template = template_of(options)
    assert template is not None
    assert (template.image, template.resolved.provider, template.resolved.spec) == (
        launch.image,
        "gh",
        "org/course/HEAD",
    )
    assert template.resolved.persistent_spec == "org/course/abc123" and template.launch_key == ""
    assert static_size(RULES, template.resolved.spec) == 3
    assert template_of(BinderOptions(image="x")) is None  # options that do not say: nothing to start
