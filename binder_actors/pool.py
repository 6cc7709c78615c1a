"""Pure: how many servers to keep started ahead of the clicks, per image, and which to start or drain.

ServerPool asks `plan_pool` on every refill pass with what it knows (the images' rules, the launches of
the sliding window, its budget, its servers); no I/O, no Ray, the clock injected (tests/unit/test_pool.py).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from binder_actors.policy import matches

WINDOW_MAX_LAUNCHES = 100_000  # launches the window remembers at most: bounded memory under a flood


@dataclass(frozen=True)
class PoolRule:
    """A static rule: a matching spec's image keeps `size` free servers (BINDER_POOL)."""

    pattern: str
    size: int


@dataclass(frozen=True)
class PoolCounts:
    """One image's pooled servers: ready and unclaimed, or still starting."""

    free: int = 0
    starting: int = 0

    @property
    def total(self) -> int:
        return self.free + self.starting


@dataclass(frozen=True)
class PoolPlan:
    """What one refill pass does: servers to start and free servers to drain, per image."""

    start: dict[str, int] = field(default_factory=dict)
    drain: dict[str, int] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)


def static_size(rules: Iterable[PoolRule], spec: str) -> int:
    """The pool size the rules give `spec` (as spec_config: the last matching rule wins; 0: none)."""
    size = 0
    for rule in rules:
        if matches(rule.pattern, spec):
            size = rule.size
    return size


def adaptive_targets(launches: Mapping[str, int], budget: int) -> dict[str, int]:
    """Share `budget` servers among the images launched most: one server per launch in the window,
    handed out a round at a time in order of launches (ties by name), until the budget is spent."""
    ranked = sorted((image for image, count in launches.items() if count > 0), key=lambda i: (-launches[i], i))
    targets: dict[str, int] = {}
    handed = 0
    round_ = 1
    while handed < budget:
        given = False
        for image in ranked:
            if launches[image] >= round_ and handed < budget:
                targets[image] = targets.get(image, 0) + 1
                handed += 1
                given = True
        if not given:
            break
        round_ += 1
    return targets


def pool_targets(static: Mapping[str, int], launches: Mapping[str, int], max_total: int, room: int) -> dict[str, int]:
    """Servers each image should have pooled.

    `static`: image -> size from BINDER_POOL (in rule order); `launches`: image -> launches in the window;
    `max_total`: BINDER_POOL_MAX, the budget of pooled servers (0: no adaptive mode, static sizes uncapped);
    `room`: sessions the quota has left for pooled servers (BINDER_MAX_SESSIONS less the real ones).
    Static sizes come first; the adaptive mode shares what is left of the budget.
    """
    cap = min(room, max_total) if max_total else room
    cap = max(cap, 0)
    targets: dict[str, int] = {}
    left = cap
    for image, size in static.items():
        given = min(size, left)
        if given:
            targets[image] = given
            left -= given
    if max_total and left:
        for image, extra in adaptive_targets(launches, left).items():
            targets[image] = max(targets.get(image, 0), extra)
    return targets


def plan_pool(targets: Mapping[str, int], current: Mapping[str, PoolCounts], max_starts: int) -> PoolPlan:
    """Start what is missing (at most `max_starts` in this pass, most-missing image first) and drain
    free servers beyond the target (every free server of an image that has no target any more)."""
    start: dict[str, int] = {}
    drain: dict[str, int] = {}
    for image, counts in current.items():
        excess = counts.total - targets.get(image, 0)
        if excess > 0 and counts.free:
            drain[image] = min(excess, counts.free)
    missing = {image: want - current.get(image, PoolCounts()).total for image, want in targets.items()}
    budget = max(max_starts, 0)
    while budget:
        wanted = [image for image, count in missing.items() if count > 0]
        if not wanted:
            break
        for image in sorted(wanted, key=lambda i: (-missing[i], i)):
            if not budget:
                break
            start[image] = start.get(image, 0) + 1
            missing[image] -= 1
            budget -= 1
    return PoolPlan(start=start, drain=drain, targets=dict(targets))


class LaunchWindow:
    """The launches of the last `seconds`, per image (the adaptive mode's demand)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._launches: deque[tuple[float, str]] = deque(maxlen=WINDOW_MAX_LAUNCHES)

    def record(self, image: str) -> None:
        self._launches.append((self.clock(), image))

    def counts(self) -> dict[str, int]:
        horizon = self.clock() - self.seconds
        while self._launches and self._launches[0][0] < horizon:
            self._launches.popleft()
        return dict(Counter(image for _, image in self._launches))
