"""A stream of events that outlives whoever first asked for it: any number of followers read it.

A launch runs as a task of its own; each follower reads the events from its own position, live
until the stream ends. The HTTP ingress keeps one per `/build` stream (so a reconnecting
EventSource is re-attached), SessionManager one per temporary user being launched (so a
launch asked for twice, from two ingress replicas or after one died, starts one server), and
BuildScheduler one per image being built (every request for it follows the one build).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Backlog(Generic[T]):
    """The events of one running stream, kept so every follower can read all of them."""

    def __init__(self, events: AsyncIterator[T]) -> None:
        self.backlog: list[T] = []
        self.finished_at: float | None = None
        self._changed = asyncio.Condition()
        # A fresh context: the stream is not a child of the request that started it, so the request
        # being cancelled (its client hung up, its caller died) does not cancel the stream.
        self._task = contextvars.Context().run(asyncio.get_running_loop().create_task, self._pump(events))

    async def _pump(self, events: AsyncIterator[T]) -> None:
        try:
            async for event in events:
                async with self._changed:
                    self.backlog.append(event)
                    self._changed.notify_all()
        finally:
            async with self._changed:
                self.finished_at = time.monotonic()
                self._changed.notify_all()

    async def follow(self, after: int = -1) -> AsyncIterator[tuple[int, T]]:
        """(index, event) for every event after index `after`, live until the stream ends."""
        index = after + 1
        while True:
            async with self._changed:
                while index >= len(self.backlog) and self.finished_at is None:
                    await self._changed.wait()
                fresh = self.backlog[index:]
                finished = self.finished_at is not None
            for event in fresh:
                yield index, event
                index += 1
            if finished and index >= len(self.backlog):
                return

    async def wait(self) -> None:
        """Until the stream has ended."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    async def cancel(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
