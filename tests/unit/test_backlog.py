"""Backlog: every follower reads the whole stream, whenever it arrives (binder_actors/backlog.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from binder_actors.backlog import Backlog


class Source:
    """An event stream the test feeds one event at a time."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

    async def events(self) -> AsyncIterator[str]:
        while (event := await self.queue.get()) is not None:
            if isinstance(event, BaseException):
                raise event
            yield event


async def read(backlog: Backlog[str], after: int = -1) -> list[tuple[int, str]]:
    return [item async for item in backlog.follow(after)]


async def until(condition, what: str) -> None:
    """Yield to the loop until `condition()`, failing after a deadline (no sleep-and-hope)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)
    assert condition(), what


def test_a_follower_gets_the_backlog_then_live_events_until_the_end():
    async def scenario() -> list[tuple[int, str]]:
        source = Source()
        backlog = Backlog(source.events())
        source.queue.put_nowait("resolving")
        source.queue.put_nowait("building")
        await until(lambda: len(backlog.backlog) == 2, "the first two events")
        follower = asyncio.ensure_future(read(backlog))
        source.queue.put_nowait("launching")
        await until(lambda: len(backlog.backlog) == 3, "the live event")
        source.queue.put_nowait("ready")
        source.queue.put_nowait(None)
        return await follower

    assert asyncio.run(scenario()) == [(0, "resolving"), (1, "building"), (2, "launching"), (3, "ready")]


def test_a_follower_after_the_end_gets_everything_and_a_reconnect_only_the_rest():
    async def scenario() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        source = Source()
        backlog = Backlog(source.events())
        for event in ("a", "b", "c", None):
            source.queue.put_nowait(event)
        await backlog.wait()
        assert backlog.finished_at is not None
        return await read(backlog), await read(backlog, after=1)

    everything, rest = asyncio.run(scenario())
    assert everything == [(0, "a"), (1, "b"), (2, "c")]
    assert rest == [(2, "c")]


def test_many_followers_each_read_every_event():
    async def scenario() -> list[list[tuple[int, str]]]:
        source = Source()
        backlog = Backlog(source.events())
        followers = [asyncio.ensure_future(read(backlog)) for _ in range(10)]
        for event in ("a", "b", None):
            source.queue.put_nowait(event)
        return await asyncio.gather(*followers)

    assert asyncio.run(scenario()) == [[(0, "a"), (1, "b")]] * 10


def test_a_crash_in_the_source_ends_the_stream_for_its_followers():
    async def scenario() -> list[tuple[int, str]]:
        source = Source()
        backlog = Backlog(source.events())
        follower = asyncio.ensure_future(read(backlog))
        source.queue.put_nowait("building")
        source.queue.put_nowait(RuntimeError("the builder died"))
        async with asyncio.timeout(5):  # a follower left waiting forever is the failure
            events = await follower
        assert backlog.finished_at is not None
        with pytest.raises(RuntimeError, match="the builder died"):  # whoever waits for the run learns why
            await backlog.wait()
        return events

    assert asyncio.run(scenario()) == [(0, "building")]


def test_cancel_ends_the_stream_for_its_followers():
    async def scenario() -> list[tuple[int, str]]:
        source = Source()
        backlog = Backlog(source.events())
        follower = asyncio.ensure_future(read(backlog))
        source.queue.put_nowait("building")
        await until(lambda: len(backlog.backlog) == 1, "the first event")
        await backlog.cancel()
        async with asyncio.timeout(5):
            return await follower

    assert asyncio.run(scenario()) == [(0, "building")]
