"""What failed launches leave in the hub, removed: at once, or in the background while the hub cannot.

A failed launch's temporary user (or, in authenticated mode, only the named server it made for a
logged-in user) must not outlive the launch. When the hub is down, restarting or slow to stop a
server, the removal is kept and retried with a growing delay until the hub does it, so a failed
launch leaves nothing behind once the hub is back. SessionManager owns one of these.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from binder_actors.hub import HubClient, HubError

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


class FailedLaunchCleanup:
    """Removes (user, server) pairs of failed launches; server '' is the whole temporary user."""

    def __init__(self, hub: HubClient, running: Callable[[str, str], bool]) -> None:
        self.hub = hub
        self._running = running  # whether a launch of (user, server) runs again: it finishes first
        self._pending: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> set[tuple[str, str]]:
        return set(self._pending)

    async def remove(self, user: str, server: str) -> None:
        """Remove it now; if the hub cannot, keep trying in the background."""
        try:
            await self._remove(user, server)
        except HubError as error:
            log.warning("could not remove user=%s after a failed launch, retrying in the background: %s", user, error)
            self._pending.add((user, server))
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._retry())

    async def _remove(self, user: str, server: str) -> None:
        if server:
            await self.hub.remove_server(user, server)
        else:
            await self.hub.remove_user(user, made_here=True)

    async def _retry(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while self._pending:
            await asyncio.sleep(delay)
            for user, server in list(self._pending):
                if self._running(user, server):
                    continue
                try:
                    await self._remove(user, server)
                except HubError:
                    continue
                self._pending.discard((user, server))
                log.info("removed user=%s server=%s of a failed launch", user, server)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
