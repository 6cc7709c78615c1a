"""Server-sent events: BinderHub's EventSource framing, with event ids and a keepalive comment while idle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from binder_actors.events import BinderEvent

KEEPALIVE_SECONDS = 25.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Identified = tuple[str | None, BinderEvent]  # (the `id:` a reconnect sends back as Last-Event-ID, the event)


def frame(event_id: str | None, event: BinderEvent) -> str:
    return (f"id: {event_id}\n" if event_id else "") + event.to_sse()


async def event_stream(events: AsyncIterator[Identified], keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
    """`[id: ...] data: <json>` per event; `:keepalive` whenever `keepalive` seconds pass without one."""
    queue: asyncio.Queue[Identified | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), keepalive)
            except asyncio.TimeoutError:
                yield ":keepalive\n\n"
                continue
            if item is None:
                break
            yield frame(*item)
        await task  # surfaces an error of the producer, if any
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
