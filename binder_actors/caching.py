"""Bounded memory for long-lived actors: TTL and LRU caches with a size bound, and single flight.

The caches are cachetools' (`TTLCache(maxsize, ttl, timer)`, `LRUCache(maxsize)`): well kept, typed,
with an injectable timer; past `maxsize` they drop expired entries first, then the least recently used.
Every table here that grows with requests is one of them, so hostile input cannot grow an actor.
Single flight is a few lines of asyncio, so it is ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache, TTLCache

__all__ = ["LRUCache", "SingleFlight", "TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Concurrent calls for one key share one run of the work; its result or error reaches them all.

    The run is a task of its own: a caller that goes away (its client hung up) neither cancels it
    nor fails the others. Nothing is kept once it ends, errors included: a cache is the caller's choice.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._running

    def __len__(self) -> int:
        return len(self._running)

    def _ended(self, key: K, done: asyncio.Future[V]) -> None:
        self._running.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: a failure whose callers all went away is not reported as lost

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """The result of `work()`, or of the run already in flight for `key`."""
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(work())
            self._running[key] = running
            running.add_done_callback(lambda done: self._ended(key, done))
        # shield: one caller cancelled must not cancel the run the others wait for
        return await asyncio.shield(running)
