"""BuildScheduler: one build per image, bounded concurrency, events streamed to every follower.

A later request for an image being built joins that build: it gets the backlog, then live events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from binder_actors.builders import BuildFailed, BuildRequest, make_executor
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent, failed, progress

log = logging.getLogger(__name__)


class BuildRun:
    """The events of one build so far, and a condition that wakes followers on each new one."""

    def __init__(self) -> None:
        self.events: list[BinderEvent] = []
        self.done = False
        self._changed = asyncio.Condition()

    async def emit(self, event: BinderEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def finish(self, event: BinderEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self.done = True
            self._changed.notify_all()

    async def follow(self) -> AsyncIterator[BinderEvent]:
        sent = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda seen=sent: len(self.events) > seen or self.done)
                fresh, finished = self.events[sent:], self.done
            for event in fresh:
                yield event
            sent += len(fresh)
            if finished and sent == len(self.events):
                return


class BuildScheduler:
    async def __init__(self, config: BinderConfig) -> None:
        self.config = config
        self.executor = make_executor(config)
        removed = await asyncio.to_thread(self.executor.cleanup_incomplete)
        if removed:
            log.info("removed builds interrupted by a restart: %s", ", ".join(removed))
        self._runs: dict[str, BuildRun] = {}
        self._slots = asyncio.Semaphore(config.max_concurrent_builds)
        self._tasks: set[asyncio.Task[None]] = set()
        self.builds_started = 0

    async def build(self, request: BuildRequest) -> AsyncIterator[BinderEvent]:
        """Stream the build of `request.image`, starting it unless it is already running."""
        run = self._runs.get(request.image)
        if run is None:
            run = BuildRun()
            self._runs[request.image] = run
            task = asyncio.create_task(self._run_build(request, run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        async for event in run.follow():
            yield event

    async def _run_build(self, request: BuildRequest, run: BuildRun) -> None:
        try:
            if self._slots.locked():
                await run.emit(progress("waiting", "Waiting for a free build slot"))
            async with self._slots:
                self.builds_started += 1
                log.info("build start image=%s build=%s", request.image, request.build_name)
                await self.executor.build(request, run.emit)
            await run.finish(
                BinderEvent(phase="built", message="Built image, launching...\n", image_name=request.image)
            )
        except BuildFailed as error:
            log.info("build failed image=%s reason=%s", request.image, error)
            tail = "\n".join(error.log_tail)
            message = f"{error}\n{tail}" if tail else str(error)
            await run.finish(failed(message, 500))
        except Exception:
            log.exception("build crashed image=%s", request.image)
            await run.finish(failed("The build stopped on an internal error; please retry.", 500))
        finally:
            self._runs.pop(request.image, None)

    async def running(self) -> list[str]:
        return sorted(self._runs)

    async def stats(self) -> dict[str, int]:
        return {"builds_started": self.builds_started, "running": len(self._runs)}
