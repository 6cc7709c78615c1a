"""Quota admission (the pure core of SessionManager), case by case, with a clock the tests move."""

from __future__ import annotations

import pytest

from binder_actors.admission import (
    HUB_FULL_MESSAGE,
    LIST_EVERY_SECONDS,
    LIST_INTERVAL_PER_LIST_SECOND,
    MAINTENANCE_MESSAGE,
    RECHECK_AFTER_SECONDS,
    Admission,
    Refusal,
    Step,
    refusal_kind,
)
from binder_actors.config import BinderConfig, SpecConfig
from binder_actors.hub_models import MANAGED_GROUP, HubUser
from binder_actors.policy import repo_quota

REPO = "https://github.com/org/repo"
OTHER = "https://github.com/org/other"
SPEC = "org/repo/HEAD"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hub_user(name: str, repo_url: str | None = REPO) -> HubUser:
    """A temporary user of binder-actors as the hub lists it; with a server started for `repo_url` unless it is None."""
    servers = {"": {"name": "", "ready": True, "url": f"/user/{name}/", "user_options": {"repo_url": repo_url}}}
    return HubUser.model_validate(
        {"name": name, "admin": False, "groups": [MANAGED_GROUP], "servers": servers if repo_url else {}}
    )


def logged_in_user(name: str, servers: dict[str, str]) -> HubUser:
    """A logged-in user (authenticated mode) with Binder servers {server name: repo_url}."""
    models = {
        server: {"name": server, "ready": True, "url": f"/user/{name}/{server}/", "user_options": {"repo_url": repo}}
        for server, repo in servers.items()
    }
    return HubUser.model_validate({"name": name, "servers": models})


def admission(clock: Clock, max_sessions: int = 100, per_repo_quota: int = 0, **settings) -> Admission:
    config = BinderConfig(max_sessions=max_sessions, per_repo_quota=per_repo_quota, **settings)
    return Admission(config.quotas.max_sessions, lambda spec, provider: repo_quota(spec, config, provider), clock=clock)


def listed(core: Admission, clock: Clock, users: list[HubUser]) -> None:
    core.listed(users, core.list_asked())


def admit(core: Admission, user: str, repo_url: str = REPO, spec: str = SPEC) -> Step | Refusal:
    """One launch's admission as SessionManager runs it, with the hub holding no user of that name."""
    step = core.decide(user, repo_url, spec)
    if step is Step.LIST_FIRST:
        pytest.fail("this helper is for a fresh list")
    if step is Step.LOOK_UP:
        step = core.decide(user, repo_url, spec, looked_up=True)
    return step


@pytest.mark.parametrize(
    ("max_sessions", "per_repo_quota", "running", "expected"),
    [
        (3, 0, [REPO, OTHER], Step.ADMITTED),
        (3, 0, [REPO, OTHER, OTHER], Refusal("pod_quota", HUB_FULL_MESSAGE)),
        (0, 0, [], Refusal("maintenance", MAINTENANCE_MESSAGE)),
        (100, 2, [REPO, OTHER], Step.ADMITTED),
        (100, 2, [REPO, REPO, OTHER], Refusal("repo_quota", f"Too many users running {REPO}! Try again soon.")),
        (100, 0, [REPO] * 50, Step.ADMITTED),  # a per-repository quota of 0 is no limit
        (2, 5, [OTHER, OTHER], Refusal("pod_quota", HUB_FULL_MESSAGE)),  # the hub's quota is checked first
    ],
)
def test_quotas_against_the_listed_sessions(max_sessions, per_repo_quota, running, expected):
    clock = Clock()
    core = admission(clock, max_sessions=max_sessions, per_repo_quota=per_repo_quota)
    listed(core, clock, [hub_user(f"u{i}", repo) for i, repo in enumerate(running)])
    assert admit(core, "newcomer") == expected


@pytest.mark.parametrize(
    ("spec", "running", "admitted"),
    [
        ("org/repo/HEAD", 2, False),  # per_repo_quota=2
        ("binder-examples/repo/HEAD", 2, True),  # high_quota_specs: per_repo_quota_higher=4
        ("binder-examples/repo/HEAD", 4, False),
        ("binder-examples/small/HEAD", 1, False),  # spec_config overrides the higher quota: 1
        ("org/tiny/HEAD", 1, True),  # two spec_config matches: the last one (3) wins over the first (1)
        ("org/tiny/HEAD", 3, False),
    ],
)
def test_repo_quota_of_high_quota_specs_and_spec_config(spec, running, admitted):
    clock = Clock()
    core = admission(
        clock,
        per_repo_quota=2,
        per_repo_quota_higher=4,
        high_quota_specs=["^binder-examples/"],
        spec_config=[
            SpecConfig(pattern="^binder-examples/small", quota=1),
            SpecConfig(pattern="^org/tiny", quota=1),
            SpecConfig(pattern="^org/t", quota=3),
        ],
    )
    listed(core, clock, [hub_user(f"u{i}") for i in range(running)])
    assert (admit(core, "newcomer", spec=spec) is Step.ADMITTED) == admitted


def test_launches_in_flight_take_places_before_the_hub_lists_them():
    clock = Clock()
    core = admission(clock, per_repo_quota=2)
    listed(core, clock, [])
    assert [admit(core, user) for user in ("a", "b")] == [Step.ADMITTED, Step.ADMITTED]
    assert admit(core, "c") == Refusal("repo_quota", f"Too many users running {REPO}! Try again soon.")
    core.release("a", delivered=False)  # a failed launch gives its place back at once
    assert admit(core, "c") is Step.ADMITTED


def test_sessions_delivered_since_the_last_list_are_still_counted():
    clock = Clock()
    core = admission(clock, max_sessions=2)
    asked = core.list_asked()
    assert core.decide("a", REPO, SPEC, listed=True) is Step.ADMITTED
    clock.now += 0.5
    core.release("a", delivered=True)
    # A list asked for before "a" was delivered does not show it: it still counts.
    core.listed([hub_user("old")], asked)
    assert core.decide("b", REPO, SPEC, listed=True) == Refusal("pod_quota", HUB_FULL_MESSAGE)
    # A list asked for after the delivery shows "a" (or not, if it ended): it alone counts from then on.
    clock.now += LIST_EVERY_SECONDS + 1
    listed(core, clock, [hub_user("old")])
    assert core.decide("b", REPO, SPEC, listed=True) is Step.ADMITTED


@pytest.mark.parametrize(
    ("age", "refused", "expected"),
    [
        (0.0, False, Step.ADMITTED),
        (LIST_EVERY_SECONDS + 0.1, False, Step.LIST_FIRST),  # stale: a list first, even to admit
        (RECHECK_AFTER_SECONDS + 0.1, False, Step.ADMITTED),  # fresh enough to admit on
        (RECHECK_AFTER_SECONDS + 0.1, True, Step.LIST_FIRST),  # a refusal is rechecked on a newer list
        (RECHECK_AFTER_SECONDS - 0.1, True, Refusal("pod_quota", HUB_FULL_MESSAGE)),
    ],
)
def test_the_age_of_the_list_decides_when_to_list_again(age, refused, expected):
    clock = Clock()
    core = admission(clock, max_sessions=1)
    listed(core, clock, [hub_user("running")] if refused else [])
    clock.now += age
    assert core.decide("newcomer", REPO, SPEC) == expected


@pytest.mark.parametrize(
    ("list_took", "age", "expected"),
    [
        (0.1, LIST_EVERY_SECONDS + 0.1, Step.LIST_FIRST),  # a quick list: asked for every LIST_EVERY_SECONDS
        (2.0, LIST_EVERY_SECONDS + 0.1, Step.ADMITTED),  # a 2 s list (a large hub) is not asked for so often
        (2.0, 2.0 * LIST_INTERVAL_PER_LIST_SECOND - 0.1, Step.ADMITTED),
        (2.0, 2.0 * LIST_INTERVAL_PER_LIST_SECOND + 0.1, Step.LIST_FIRST),
    ],
)
def test_a_slow_list_is_asked_for_in_proportion_to_its_duration(list_took, age, expected):
    clock = Clock()
    core = admission(clock)
    asked = core.list_asked()
    clock.now += list_took
    core.listed([], asked)
    clock.now = asked + age
    assert core.decide("newcomer", REPO, SPEC) == expected


def test_the_count_is_the_list_the_sessions_delivered_since_and_the_launches_in_progress():
    clock = Clock()
    core = admission(clock)
    assert core.list_due()
    listed(core, clock, [hub_user("running"), hub_user("no-server", repo_url=None)])
    assert not core.list_due()
    assert admit(core, "launching") is Step.ADMITTED
    assert admit(core, "delivered") is Step.ADMITTED
    core.release("delivered", delivered=True)
    assert admit(core, "failed") is Step.ADMITTED
    core.release("failed", delivered=False)
    assert core.counted() == 3  # running, launching, delivered; a user without a server is no session


def test_a_stale_list_only_ever_refuses_and_a_fresh_one_admits():
    clock = Clock()
    core = admission(clock, max_sessions=1)
    listed(core, clock, [hub_user("ended-since")])
    clock.now += RECHECK_AFTER_SECONDS - 0.1
    # The session ended after the list: the count is one too many, never one too few.
    assert core.decide("newcomer", REPO, SPEC) == Refusal("pod_quota", HUB_FULL_MESSAGE)
    clock.now += 0.2
    assert core.decide("newcomer", REPO, SPEC) is Step.LIST_FIRST
    listed(core, clock, [])
    assert core.decide("newcomer", REPO, SPEC, listed=True) is Step.ADMITTED


def test_a_refusal_rechecked_on_a_fresh_list_is_not_listed_again():
    clock = Clock()
    core = admission(clock, max_sessions=1)
    listed(core, clock, [hub_user("running")])
    clock.now += RECHECK_AFTER_SECONDS + 1
    assert core.decide("newcomer", REPO, SPEC) is Step.LIST_FIRST
    clock.now += 2 * LIST_EVERY_SECONDS  # the hub took long to answer: the list made is used all the same
    core.listed([hub_user("running")], clock.now - 2 * LIST_EVERY_SECONDS)
    assert core.decide("newcomer", REPO, SPEC, listed=True) == Refusal("pod_quota", HUB_FULL_MESSAGE)


@pytest.mark.parametrize(
    ("hub_users", "in_flight", "expected"),
    [
        (["known"], [], Step.LOOK_UP),  # the hub listed it: maybe a launch asked for again
        ([], ["known"], Step.LOOK_UP),  # admitted since the last list
        (["someone-else"], [], Step.ADMITTED),
    ],
)
def test_a_user_admission_already_knows_is_looked_up_in_the_hub_first(hub_users, in_flight, expected):
    clock = Clock()
    core = admission(clock)
    listed(core, clock, [hub_user(name) for name in hub_users])
    for name in in_flight:
        assert core.decide(name, REPO, SPEC) is Step.ADMITTED
    assert core.decide("known", REPO, SPEC) is expected


def test_a_known_user_the_hub_no_longer_has_is_admitted_as_new():
    clock = Clock()
    core = admission(clock, max_sessions=2)
    listed(core, clock, [hub_user("known", repo_url=None)])  # a user without a server counts no session
    assert core.decide("known", REPO, SPEC) is Step.LOOK_UP
    assert core.decide("known", REPO, SPEC, looked_up=True) is Step.ADMITTED


def test_maintenance_refuses_before_asking_the_hub_anything():
    clock = Clock()
    core = admission(clock, max_sessions=0)
    assert core.decide("anyone", REPO, SPEC) == Refusal("maintenance", MAINTENANCE_MESSAGE)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (HUB_FULL_MESSAGE + "\n", "pod_quota"),
        (f"Too many users running {REPO}! Try again soon.\n", "repo_quota"),
        (MAINTENANCE_MESSAGE + "\n", "maintenance"),
        ("Launch failed: the server exited.\n", None),
    ],
)
def test_the_kind_of_a_refusal_is_known_from_its_message(message, kind):
    assert refusal_kind(message) == kind


def test_a_logged_in_users_servers_each_count_against_the_quotas():
    clock = Clock()
    core = admission(clock, max_sessions=3, per_repo_quota=2)
    listed(core, clock, [logged_in_user("alice", {"one": REPO, "two": REPO}), hub_user("temporary", OTHER)])
    refused = core.decide("alice/three", REPO, SPEC, listed=True)
    assert refused == Refusal("pod_quota", HUB_FULL_MESSAGE)


def test_a_logged_in_users_listed_server_is_looked_up_not_counted_again():
    clock = Clock()
    core = admission(clock, max_sessions=1)
    listed(core, clock, [logged_in_user("alice", {"one": REPO})])
    assert core.decide("alice/one", REPO, SPEC, listed=True) is Step.LOOK_UP
    assert core.decide("alice", REPO, SPEC, listed=True) == Refusal("pod_quota", HUB_FULL_MESSAGE)


def pooled_user(name: str, claim_key: str = "", repo_url: str = REPO) -> HubUser:
    """A server a ServerPool started (in its pool group), claimed by the launch `claim_key` if given."""
    groups = [MANAGED_GROUP, "binder-actors-pool-ns"] + ([f"binder-actors-claim-{claim_key}"] if claim_key else [])
    servers = {"": {"name": "", "ready": True, "url": f"/user/{name}/", "user_options": {"repo_url": repo_url}}}
    return HubUser.model_validate({"name": name, "groups": groups, "servers": servers})


def test_a_pooled_server_counts_once_whether_its_claim_is_in_flight_or_handed_over():
    clock = Clock()
    core = admission(clock, max_sessions=3)
    listed(core, clock, [pooled_user("pool-a"), pooled_user("pool-b")])
    assert core.counted() == 0  # servers waiting in the pool are no sessions
    # Two launches claim pooled servers; a list while their claims are in flight shows them claimed.
    for launch in ("launch-1", "launch-2"):
        assert core.decide(launch, REPO, SPEC, looked_up=True, claim_key=f"key-{launch}") is Step.ADMITTED
    clock.now += 10
    listed(core, clock, [pooled_user("pool-a", "key-launch-1"), pooled_user("pool-b", "key-launch-2")])
    assert core.counted() == 2  # each once, under its launch's name: a third launch still fits
    assert admit(core, "launch-3") is Step.ADMITTED
    core.release("launch-3", delivered=False)
    # Handed over, each session counts as its pooled user, until and after a list shows it.
    core.handed_over("launch-1", "pool-a")
    core.handed_over("launch-2", "pool-b")
    assert core.counted() == 2
    clock.now += 10
    listed(core, clock, [pooled_user("pool-a", "key-launch-1"), pooled_user("pool-b", "key-launch-2")])
    assert core.counted() == 2
    assert admit(core, "launch-4") is Step.ADMITTED
