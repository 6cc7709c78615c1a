"""Launches that outlive their HTTP connection, so a reconnecting EventSource is re-attached, not relaunched.

Each `/build` stream runs its launch as a task of the replica and numbers its events
(`id: <launch>.<n>`). A browser whose connection drops reconnects with `Last-Event-ID`; it gets
the events after that one from the same launch, and no second server is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import secrets
import time
from collections.abc import AsyncIterator

from binder_actors.events import BinderEvent

KEEP_FINISHED_SECONDS = 300.0  # a reconnect after this long starts afresh


class LaunchRun:
    """One launch's events: a backlog every follower reads from its own position."""

    def __init__(self, events: AsyncIterator[BinderEvent]) -> None:
        self.id = secrets.token_hex(8)
        self.backlog: list[BinderEvent] = []
        self.finished_at: float | None = None
        self._changed = asyncio.Condition()
        # A fresh context: the launch is not a child of the HTTP request, so Serve cancelling the
        # request (its client hung up) does not cancel the actor calls of the launch.
        self._task = contextvars.Context().run(asyncio.get_running_loop().create_task, self._pump(events))

    async def _pump(self, events: AsyncIterator[BinderEvent]) -> None:
        try:
            async for event in events:
                async with self._changed:
                    self.backlog.append(event)
                    self._changed.notify_all()
        finally:
            async with self._changed:
                self.finished_at = time.monotonic()
                self._changed.notify_all()

    def event_id(self, index: int) -> str:
        return f"{self.id}.{index}"

    async def follow(self, after: int = -1) -> AsyncIterator[tuple[str, BinderEvent]]:
        """(event id, event) for every event after index `after`, live until the launch ends."""
        index = after + 1
        while True:
            async with self._changed:
                while index >= len(self.backlog) and self.finished_at is None:
                    await self._changed.wait()
                fresh = self.backlog[index:]
                finished = self.finished_at is not None
            for event in fresh:
                yield self.event_id(index), event
                index += 1
            if finished and index >= len(self.backlog):
                return

    async def cancel(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def parse_last_event_id(value: str | None) -> tuple[str, int] | None:
    """(launch id, index) of a `Last-Event-ID` we gave out, or None for anything else."""
    if not value:
        return None
    launch_id, dot, index = value.strip().partition(".")
    if not dot or not index.isdigit() or len(launch_id) != 16:
        return None
    return launch_id, int(index)


class LaunchRegistry:
    """The launches of one ingress replica, kept a while after they end for late reconnects."""

    def __init__(self, keep_finished: float = KEEP_FINISHED_SECONDS) -> None:
        self.keep_finished = keep_finished
        self._runs: dict[str, LaunchRun] = {}

    def start(self, events: AsyncIterator[BinderEvent]) -> LaunchRun:
        self._prune()
        run = LaunchRun(events)
        self._runs[run.id] = run
        return run

    def get(self, launch_id: str) -> LaunchRun | None:
        self._prune()
        return self._runs.get(launch_id)

    def _prune(self) -> None:
        now = time.monotonic()
        for launch_id, run in list(self._runs.items()):
            if run.finished_at is not None and now - run.finished_at > self.keep_finished:
                del self._runs[launch_id]
