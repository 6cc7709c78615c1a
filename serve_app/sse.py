"""Server-sent events: BinderHub's EventSource framing, with a keepalive comment while idle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from binder_actors.events import BinderEvent

KEEPALIVE_SECONDS = 25.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def event_stream(events: AsyncIterator[BinderEvent], keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
    """`data: <json>` per event; `:keepalive` whenever `keepalive` seconds pass without one."""
    queue: asyncio.Queue[BinderEvent | None] = asyncio.Queue()

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
                event = await asyncio.wait_for(queue.get(), keepalive)
            except asyncio.TimeoutError:
                yield ":keepalive\n\n"
                continue
            if event is None:
                break
            yield event.to_sse()
        await task  # surfaces an error of the producer, if any
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
