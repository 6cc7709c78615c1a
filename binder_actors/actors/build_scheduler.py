"""BuildScheduler: one build per image, bounded concurrency, events streamed to every follower.

A later request for an image being built joins that build: it gets the backlog, then live events.
Builds beyond BINDER_MAX_CONCURRENT_BUILDS wait in a FIFO queue and are told their position.
Builds that outlive a scheduler (Kubernetes build pods) are followed again by the next one.
Before a build starts, the image store is kept within its budget (image_budget.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import ray

from binder_actors.actors.image_cache import make_registry
from binder_actors.backlog import Backlog
from binder_actors.builders import BuildFailed, Emit, RecoverableExecutor, make_executor
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent, failed, progress
from binder_actors.image_budget import budget_bytes, launch_records, prune
from binder_actors.logs import setup_logging
from binder_actors.models import BuildRequest, BuildSchedulerStats, PruneReport
from binder_actors.registries import PrunableStore

log = logging.getLogger(__name__)


class BuildScheduler:
    async def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.executor = make_executor(config)
        self.registry = make_registry(config)
        removed = await asyncio.to_thread(self.executor.cleanup_incomplete)
        if removed:
            log.info("removed builds interrupted by a restart: %s", ", ".join(removed))
        self._runs: dict[str, Backlog[BinderEvent]] = {}
        self._queue: list[str] = []
        self._building = 0
        self._slots_changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self.builds_started = 0
        self._pruning = asyncio.Lock()  # one budget pass at a time: two would pick the same images
        if isinstance(self.executor, RecoverableExecutor):
            for request in await asyncio.to_thread(self.executor.recover):
                log.info("following a build from before a restart image=%s build=%s", request.image, request.build_name)
                self._start(request, recovered=True)

    async def build(self, request: BuildRequest) -> AsyncIterator[BinderEvent]:
        """Stream the build of `request.image`, starting it unless it is already running."""
        run = self._runs.get(request.image) or self._start(request)
        async for _index, event in run.follow():
            yield event

    def _start(self, request: BuildRequest, *, recovered: bool = False) -> Backlog[BinderEvent]:
        events: asyncio.Queue[BinderEvent | None] = asyncio.Queue()
        # The build is a task of its own, held here: it runs to its end whether anyone follows it.
        task = asyncio.create_task(self._run_build(request, events.put, recovered=recovered))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: events.put_nowait(None))
        run = Backlog(_until_none(events))
        self._runs[request.image] = run
        return run

    async def _wait_for_slot(self, image: str, emit: Emit) -> None:
        """Wait in the queue, telling the build its position each time it moves."""
        told = 0
        async with self._slots_changed:
            self._queue.append(image)
            try:
                while True:
                    position = self._queue.index(image) + 1
                    if position == 1 and self._building < self.config.max_concurrent_builds:
                        self._building += 1
                        return
                    if position != told:
                        told = position
                        await emit(progress("waiting", f"Waiting for a build slot: position {position} in the queue"))
                    await self._slots_changed.wait()
            finally:
                self._queue.remove(image)
                self._slots_changed.notify_all()

    async def _release_slot(self) -> None:
        async with self._slots_changed:
            self._building -= 1
            self._slots_changed.notify_all()

    async def _run_build(self, request: BuildRequest, emit: Emit, *, recovered: bool = False) -> None:
        """Build, or with `recovered`, follow a build a previous scheduler started (it already holds a slot)."""
        try:
            if await self.registry.exists(request.image):
                # Built by a run that ended between this caller's cache check and its call: building
                # again would replace the image under the launches already using it.
                await self._tell_image_cache(request.image)
                await emit(
                    BinderEvent(phase="built", message="Found built image, launching...\n", image_name=request.image)
                )
                return
            if recovered:
                self._building += 1
            else:
                await self._wait_for_slot(request.image, emit)
                self.builds_started += 1
                log.info("build start image=%s build=%s", request.image, request.build_name)
                await self._keep_within_budget()
            try:
                await self.executor.build(request, emit)
            except BuildFailed:
                # A recovered build is followed by the old scheduler too while it lives (a KubeRay
                # upgrade): its pod deleted under us after a success is still a success.
                if not (recovered and await self.registry.exists(request.image)):
                    raise
            finally:
                await self._release_slot()
            await self._tell_image_cache(request.image)
            await emit(BinderEvent(phase="built", message="Built image, launching...\n", image_name=request.image))
        except BuildFailed as error:
            log.info("build failed image=%s reason=%s", request.image, error)
            tail = "\n".join(error.log_tail)
            await emit(failed(f"{error}\n{tail}" if tail else str(error), 500))
        except Exception:
            log.exception("build crashed image=%s", request.image)
            await emit(failed("The build stopped on an internal error; please retry.", 500))
        finally:
            self._runs.pop(request.image, None)

    async def _tell_image_cache(self, image: str) -> None:
        """ImageCache may hold a miss for the image from before the build: have it ask the registry again."""
        try:
            image_cache = ray.get_actor("ImageCache", namespace=self.config.namespace)
        except ValueError:  # a scheduler without the other actors (tests): no cache to tell
            return
        try:
            await image_cache.refresh.remote(image)
        except Exception as error:  # the build stands; a cached miss expires after BINDER_IMAGE_CACHE_MISS_TTL
            log.warning("could not refresh ImageCache image=%s error=%s", image, error)

    async def _keep_within_budget(self) -> None:
        """Make room for the build about to start; a pass that fails leaves the build to run (and the
        disk, if it really fills, to fail it cleanly)."""
        if not budget_bytes(self.config):
            return
        try:
            report = await self.prune()
        except Exception as error:
            log.warning("could not keep the image store within its budget error=%s", error)
            return
        if report.removed:
            log.info("image store budget removed=%s freed_bytes=%d", ",".join(report.removed), report.freed_bytes)

    @ray.method(max_task_retries=-1)  # a pass again removes nothing more than the first one left
    async def prune(self, dry_run: bool = False) -> PruneReport:
        """Bring the image store within BINDER_IMAGE_STORE_MAX_GB, with room for one more image: the images
        launched least recently that no session runs go first. ImageCache forgets each removed image."""
        records = launch_records(self.config)
        if records is None or not isinstance(self.registry, PrunableStore):
            return PruneReport(dry_run=dry_run)
        async with self._pruning:
            # The sessions are asked for first: without them no image is known to be free to go.
            session_manager = ray.get_actor("SessionManager", namespace=self.config.namespace)
            in_use = {session.image for session in await session_manager.list_sessions.remote()}
            in_use.update(self._runs)  # an image being built again is not the one to remove
            report = await prune(self.registry, records, in_use, budget_bytes(self.config), dry_run=dry_run)
            if report.removed and not dry_run:
                await self._tell_image_cache_removed(report.removed)
        return report

    async def _tell_image_cache_removed(self, images: list[str]) -> None:
        try:
            image_cache = ray.get_actor("ImageCache", namespace=self.config.namespace)
            await image_cache.forget.remote(images)
        except Exception as error:  # its hits expire after BINDER_IMAGE_CACHE_HIT_TTL; a launch meanwhile fails
            log.warning("could not tell ImageCache of removed images=%s error=%s", ",".join(images), error)

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def running(self) -> list[str]:
        return sorted(self._runs)

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def stats(self) -> BuildSchedulerStats:
        return BuildSchedulerStats(builds_started=self.builds_started, building=self._building, queued=len(self._queue))


async def _until_none(events: asyncio.Queue[BinderEvent | None]) -> AsyncIterator[BinderEvent]:
    """A build's events as the stream its Backlog keeps; None, put when the build's task ends, ends it."""
    while (event := await events.get()) is not None:
        yield event
