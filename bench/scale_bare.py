"""`python -m bench scale --bare`: the same load on the same hub (loopback servers, its own database),
without binder-actors in front, to tell the hub's limit from ours. A TEST TOOL.

Each launch makes the REST calls SessionManager makes (user, group mark, token, start, the hub's
progress stream to ready), from the bench process with one HubClient, at most as many spawns at
once as SessionManager's BINDER_MAX_CONCURRENT_SPAWNS. No Ray, no Serve, no admission, no resolve.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.harness import TimedStream
from bench.loopback_stack import LoopbackStack, loopback_stack
from bench.scale import figures, run_load
from bench.scale_probe import ProcessSampler, sample_forever, timed
from binder_actors.hub import HubClient, HubError


async def bare_launch(hub: HubClient, slots: asyncio.Semaphore, user: str) -> TimedStream:
    stream = TimedStream(started=time.perf_counter())
    try:
        async with slots:
            await hub.create_user(user)
            token = await hub.create_token(user, note="bench", scopes=[f"access:servers!user={user}"])
            await hub.start_server(user, "", {"image": "bench", "token": token})
            async for event in hub.progress(user):
                if event.ready or event.failed:
                    break
        model = await hub.get_user(user)
        server = model.servers.get("") if model else None
        ready = bool(server and server.ready)
        stream.events.append({"phase": "ready" if ready else "failed", "url": hub.hub_url + f"user/{user}/"})
    except HubError as error:
        stream.events.append({"phase": "failed", "message": str(error)})
    stream.arrivals.append(time.perf_counter())
    stream.ids.append("")
    return stream


async def _bare(bench: LoopbackStack, sessions: int, rate: float, minutes: float) -> dict[str, Any]:
    hub = HubClient(bench.hub.url, bench.hub_token)
    await hub.ensure_managed_group()
    slots = asyncio.Semaphore(bench.config.quotas.max_concurrent_spawns)
    sampler = ProcessSampler()
    sampler.sample()
    sampling = asyncio.create_task(sample_forever(sampler))
    try:
        streams, started, launched = await run_load(
            lambda index: bare_launch(hub, slots, f"bare-{index}"), sessions, rate, minutes
        )
        sampler.sample()
        sampling.cancel()
        moment = datetime.now(timezone.utc) - timedelta(seconds=bench.config.culling.timeout)
        scans = {
            "list_all_users_s": await timed(hub.list_users()),
            "list_idle_users_s": await timed(hub.idle_since(moment)),
        }
        live = sum(1 for user in await hub.list_users() if user.servers)
    finally:
        await hub.aclose()
    result = figures(streams, started, launched, live, sampler)
    result["scans_at_end_s"] = {name: round(value, 3) for name, value in scans.items()}
    result["loopback"] = bench.loopback_status()
    return result


def run_bare(sessions: int, rate: float, minutes: float, hub_log: Path | None = None) -> dict[str, Any]:
    with loopback_stack(sessions, bare=True, hub_log=hub_log) as bench:
        result = asyncio.run(_bare(bench, sessions, rate, minutes))
    return {"mode": "bare hub", "target_sessions": sessions, "target_rate_per_min": rate, "minutes": minutes, **result}
