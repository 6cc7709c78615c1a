"""The bounded caches and single flight every actor uses (binder_actors/caching.py)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from binder_actors.caching import LRUCache, SingleFlight, TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("ttl", "age", "fresh"),
    [(60.0, 0.0, True), (60.0, 59.9, True), (60.0, 60.0, False), (60.0, 61.0, False), (0.0, 0.0, False)],
)
def test_ttl_cache_answers_an_entry_until_its_ttl_has_passed(ttl, age, fresh):
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(maxsize=10, ttl=ttl, timer=clock)
    cache["spec"] = 1
    clock.now = age
    assert ("spec" in cache) is fresh
    assert cache.get("spec") == (1 if fresh else None)


def test_ttl_cache_never_holds_more_than_its_bound_and_drops_the_oldest():
    clock = Clock()
    cache: TTLCache[int, int] = TTLCache(maxsize=100, ttl=60.0, timer=clock)
    for spec in range(100_000):
        cache[spec] = spec
        assert len(cache) <= 100
    assert sorted(cache) == list(range(99_900, 100_000))


def test_ttl_cache_evicts_expired_entries_before_live_ones():
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(maxsize=2, ttl=10.0, timer=clock)
    cache["old"] = 1
    clock.now = 5.0
    cache["young"] = 2
    clock.now = 12.0  # "old" expired, "young" has 3 s left
    cache["new"] = 3
    assert sorted(cache) == ["new", "young"]


def test_lru_cache_keeps_the_recently_used_entries():
    cache: LRUCache[str, int] = LRUCache(maxsize=2)
    cache["a"], cache["b"] = 1, 2
    assert cache["a"] == 1  # "a" used: "b" is now the oldest
    cache["c"] = 3
    assert sorted(cache) == ["a", "c"]


def test_single_flight_runs_the_work_once_for_concurrent_callers():
    calls: list[str] = []

    async def scenario() -> list[str]:
        flight: SingleFlight[str, str] = SingleFlight()
        release = asyncio.Event()

        async def work() -> str:
            calls.append("run")
            await release.wait()
            return "sha"

        callers = [asyncio.ensure_future(flight.run("spec", work)) for _ in range(100)]
        await asyncio.sleep(0)  # let every caller reach the flight (a scheduling step, not a wait)
        assert "spec" in flight and len(flight) == 1
        release.set()
        results = await asyncio.gather(*callers)
        assert "spec" not in flight  # nothing is kept once the run ends
        return results

    assert asyncio.run(scenario()) == ["sha"] * 100
    assert calls == ["run"]


def test_single_flight_error_reaches_every_caller_and_is_not_kept():
    calls: list[int] = []

    async def scenario() -> tuple[list[BaseException | str], str]:
        flight: SingleFlight[str, str] = SingleFlight()
        release = asyncio.Event()

        async def failing() -> str:
            calls.append(1)
            await release.wait()
            raise LookupError("not found")

        async def working() -> str:
            calls.append(2)
            return "sha"

        callers = [asyncio.ensure_future(flight.run("spec", failing)) for _ in range(5)]
        await asyncio.sleep(0)
        release.set()
        errors = await asyncio.gather(*callers, return_exceptions=True)
        return errors, await flight.run("spec", working)

    errors, later = asyncio.run(scenario())
    assert [type(error) for error in errors] == [LookupError] * 5
    assert later == "sha"  # the next call runs the work again
    assert calls == [1, 2]


def test_single_flight_caller_cancelled_leaves_the_run_to_the_others():
    async def scenario() -> str:
        flight: SingleFlight[str, str] = SingleFlight()
        release = asyncio.Event()

        async def work() -> str:
            await release.wait()
            return "sha"

        leaving = asyncio.ensure_future(flight.run("spec", work))
        staying = asyncio.ensure_future(flight.run("spec", work))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.gather(leaving, return_exceptions=True)
        release.set()
        return await staying

    assert asyncio.run(scenario()) == "sha"


def test_single_flight_failure_whose_callers_all_left_is_not_reported_as_lost():
    """asyncio reports 'Task exception was never retrieved' for a failed run nobody awaited any more."""

    async def scenario() -> list[dict]:
        lost: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: lost.append(context))
        flight: SingleFlight[str, str] = SingleFlight()
        release = asyncio.Event()

        async def work() -> str:
            await release.wait()
            raise LookupError("no such ref")

        caller = asyncio.ensure_future(flight.run("spec", work))
        await asyncio.sleep(0)
        caller.cancel()  # the client hung up
        await asyncio.gather(caller, return_exceptions=True)
        release.set()
        while "spec" in flight:
            await asyncio.sleep(0)
        gc.collect()  # the report comes when the failed task is collected
        await asyncio.sleep(0)
        return lost

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == []  # a run that never ends fails, not hangs
