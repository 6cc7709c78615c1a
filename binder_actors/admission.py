"""Pure: quota admission of launches (BinderHub's pod quota, per-repository quota and maintenance).

SessionManager holds the lock and asks the hub; this core holds what admission counts and decides.
No I/O, no Ray: the clock is injected, so tables of cases test it (tests/unit/test_admission.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from binder_actors.hub_models import HubUser
from binder_actors.owned_sessions import session_repos

LIST_EVERY_SECONDS = 5.0
LIST_INTERVAL_PER_LIST_SECOND = 10.0  # a list that takes 1 s is asked for at most every 10 s
RECHECK_AFTER_SECONDS = 1.0

MAINTENANCE_MESSAGE = "This BinderHub is in maintenance: no new sessions. Try again later."
HUB_FULL_MESSAGE = "Too many users on this BinderHub! Try again soon."
REPO_FULL_PREFIX = "Too many users running "

RefusalKind = Literal["maintenance", "pod_quota", "repo_quota"]


@dataclass(frozen=True)
class Refusal:
    """A launch refused; BinderHub's launch status counts maintenance as pod_quota."""

    kind: RefusalKind
    message: str


class Step(Enum):
    """What admission needs before it can decide, or that it admitted."""

    LIST_FIRST = "list the hub's users, give them to listed(), and ask again"
    LOOK_UP = "ask the hub for this user: if it has it, that is the launch; else ask again"
    ADMITTED = "the place is taken until release()"


def refusal_kind(message: str) -> RefusalKind | None:
    """The kind of refusal a failed event's message carries, None if it is no quota refusal."""
    if message.startswith(REPO_FULL_PREFIX):
        return "repo_quota"
    if message.startswith(HUB_FULL_MESSAGE):
        return "pod_quota"
    if message.startswith(MAINTENANCE_MESSAGE):
        return "maintenance"
    return None


class Admission:
    """Counts sessions and takes places, so no quota is ever over-admitted.

    A session counts from the moment its place is taken until the hub no longer lists its server.
    The hub's list is asked for at most every `list_every` seconds: LIST_EVERY_SECONDS, or
    LIST_INTERVAL_PER_LIST_SECOND times as long as the last list took, whichever is longer, so
    listing a large hub never takes more than a tenth of its time (a list per launch made 200
    simultaneous launches wait minutes): sessions delivered since the last list are counted from
    `_since_listed`, and ended ones count until the next list, so a stale count only ever refuses,
    and a refusal is checked against a list made at most RECHECK_AFTER_SECONDS earlier.
    Every method is synchronous, so on one event loop none interleaves with another; SessionManager's
    lock keeps one launch's decide() and the hub calls it asks for together.
    """

    def __init__(
        self,
        max_sessions: int,
        quota_of: Callable[[str, str], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self.quota_of = quota_of  # (spec, provider) -> sessions one repository may have (0: no limit)
        self.clock = clock
        self._listed_at = self._listed_done = float("-inf")
        self._list_seconds = 0.0
        self._listed_users: set[str] = set()
        self._listed: dict[str, str] = {}  # user -> repo_url, of the sessions in the last list
        self._since_listed: dict[str, tuple[str, float]] = {}  # user -> (repo_url, when delivered or admitted)
        self._launching: dict[str, str] = {}  # user -> repo_url, of the launches in progress
        # claim key -> user, of launches in progress that may take a pooled server: counted under their
        # own name until handed_over(), so a list meanwhile does not count their claimed server again.
        self._claiming: dict[str, str] = {}

    def decide(
        self,
        user: str,
        repo_url: str,
        spec: str,
        *,
        provider: str = "",
        listed: bool = False,
        looked_up: bool = False,
        claim_key: str = "",
    ) -> Step | Refusal:
        """Admit `user` (its place taken), refuse it, or say what to ask the hub first.

        `listed`: a list was made for this launch (it is not asked for again); `looked_up`: the hub
        was asked for `user` and does not have it. Each is asked for at most once per launch.
        `claim_key`: the key a pooled server this launch claims will carry in the hub (its claim group).
        """
        if self.max_sessions <= 0:
            return Refusal("maintenance", MAINTENANCE_MESSAGE)
        if not listed and self.list_due():
            return Step.LIST_FIRST
        if not looked_up and (user in self._listed_users or user in self._since_listed):
            return Step.LOOK_UP
        refusal = self._over_quota(repo_url, spec, provider)
        if refusal and not listed and self.clock() - self._listed_done > RECHECK_AFTER_SECONDS:
            return Step.LIST_FIRST
        if refusal:
            return refusal
        self._launching[user] = repo_url
        self._since_listed[user] = (repo_url, self.clock())
        if claim_key:
            self._claiming[claim_key] = user
        return Step.ADMITTED

    @property
    def list_every(self) -> float:
        """Seconds between two lists of the hub's users (longer when listing takes long)."""
        return max(LIST_EVERY_SECONDS, LIST_INTERVAL_PER_LIST_SECOND * self._list_seconds)

    def list_due(self) -> bool:
        """Whether the last list is older than `list_every` (or there was none)."""
        return self.clock() - self._listed_at > self.list_every

    def counted(self) -> int:
        """Sessions counted now: the last list, those delivered since, and the launches in progress."""
        since = {user: repo for user, (repo, _) in self._since_listed.items()}
        return len({**self._listed, **since, **self._launching})

    def list_asked(self) -> float:
        """The time to hand to listed() for a list asked for now."""
        return self.clock()

    def listed(self, users: Iterable[HubUser], asked: float) -> None:
        """The hub's users, as a list asked for at `asked` answered."""
        users = list(users)
        self._listed_at = asked
        self._listed_done = self.clock()
        self._list_seconds = max(0.0, self._listed_done - asked)
        # A temporary user counts once by its name; a logged-in user once per Binder server (user/server).
        # A pooled server no launch has claimed is no session yet: it counts once claimed.
        # One claimed by a launch still in progress counts under that launch's name (its place is taken).
        counted = [
            user
            for user in users
            if not user.waiting_in_pool and not (user.claim_key and user.claim_key in self._claiming)
        ]
        self._listed = {key: repo for user in counted for key, repo in session_repos(user).items()}
        self._listed_users = {user.name for user in users if user.managed} | self._listed.keys()
        # Sessions delivered while the list was on its way may be missing from it: keep counting them.
        self._since_listed = {user: made for user, made in self._since_listed.items() if made[1] >= asked}

    def release(self, user: str, delivered: bool) -> None:
        """The launch of `user` ended: a delivered session counts until a list made after now shows it."""
        repo_url = self._launching.pop(user, "")
        self._claiming = {key: who for key, who in self._claiming.items() if who != user}
        if delivered:
            self._since_listed[user] = (repo_url, self.clock())
        else:
            self._since_listed.pop(user, None)

    def handed_over(self, user: str, holder: str) -> None:
        """The launch of `user` ended with the pooled server of hub user `holder`: the session counts as
        `holder` (the name the hub's lists give it) until a list made after now shows it."""
        repo_url = self._launching.pop(user, "") or self._since_listed.get(user, ("", 0.0))[0]
        self._claiming = {key: who for key, who in self._claiming.items() if who != user}
        self._since_listed.pop(user, None)
        self._since_listed[holder] = (repo_url, self.clock())

    def sessions(self) -> int:
        """The sessions admission counts now (running, delivered since the last list, launching)."""
        return len(self._counted())

    def _counted(self) -> dict[str, str]:
        since = {user: repo for user, (repo, _) in self._since_listed.items()}
        return {**self._listed, **since, **self._launching}  # user -> repo_url

    def _over_quota(self, repo_url: str, spec: str, provider: str) -> Refusal | None:
        counted = self._counted()
        if len(counted) >= self.max_sessions:
            return Refusal("pod_quota", HUB_FULL_MESSAGE)
        quota = self.quota_of(spec, provider)
        if quota and sum(r == repo_url for r in counted.values()) >= quota:
            return Refusal("repo_quota", f"{REPO_FULL_PREFIX}{repo_url}! Try again soon.")
        return None
