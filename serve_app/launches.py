"""Launches that outlive their HTTP connection, so a reconnecting EventSource is re-attached, not relaunched.

Each `/build` stream runs its launch as a task of the replica and numbers its events
(`id: <launch>.<n>`). A browser whose connection drops reconnects with `Last-Event-ID`; it gets
the events after that one from the same launch, and no second server is started. A reconnect that
reaches another replica (or a restarted one) runs the launch again under the same launch id:
the launch id names the session's hub user, so SessionManager hands back the same session.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

from binder_actors.backlog import Backlog
from binder_actors.events import BinderEvent

KEEP_FINISHED_SECONDS = 300.0  # a reconnect after this long starts afresh


class LaunchRun(Backlog[BinderEvent]):
    """One launch's events, numbered `<launch id>.<n>` on the wire from `first` on (a launch resumed
    from another replica goes on from the number its client saw last)."""

    def __init__(
        self, events: AsyncIterator[BinderEvent], launch_id: str | None = None, first: int = 0, owner: str = ""
    ) -> None:
        super().__init__(events)
        self.id = launch_id or new_launch_id()
        self.first = first
        self.owner = owner  # the logged-in user who started it (authenticated mode): only they re-attach

    @property
    def last_number(self) -> int:
        return self.first + len(self.backlog) - 1

    async def numbered(self, after: int = -1) -> AsyncIterator[tuple[str, BinderEvent]]:
        """(event id, event) for every event numbered after `after`, live until the launch ends."""
        async for index, event in self.follow(max(after - self.first, -1)):
            yield f"{self.id}.{self.first + index}", event


def new_launch_id() -> str:
    return secrets.token_hex(8)


def parse_last_event_id(value: str | None) -> tuple[str, int] | None:
    """(launch id, index) of a `Last-Event-ID` we gave out, or None for anything else."""
    if not value:
        return None
    launch_id, dot, index = value.strip().partition(".")
    well_formed = index.isascii() and index.isdigit() and len(index) <= 9
    if not dot or not well_formed or len(launch_id) != 16 or not set(launch_id) <= set("0123456789abcdef"):
        return None
    return launch_id, int(index)


class LaunchRegistry:
    """The launches of one ingress replica, kept a while after they end for late reconnects."""

    def __init__(self, keep_finished: float = KEEP_FINISHED_SECONDS) -> None:
        self.keep_finished = keep_finished
        self._runs: dict[str, LaunchRun] = {}

    def start(
        self, events: AsyncIterator[BinderEvent], launch_id: str | None = None, first: int = 0, owner: str = ""
    ) -> LaunchRun:
        self._prune()
        run = LaunchRun(events, launch_id, first, owner)
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
