"""Throughput: cached ref resolutions, SSE events through the ingress, and `/health` requests per second.

- Ref resolutions: bench/resolve.py's figures (RefResolver, cached, against no cache), run first.
- SSE events: the real build log of a repository whose postBuild prints 5,000 lines, read by an
  httpx client from the ingress. Live, the lines travel builder -> BuildScheduler (a Ray streaming
  generator) -> ingress -> SSE; the rate is taken from the first printed line to the last. Then
  the whole log again, replayed by the ingress to a reconnect with `Last-Event-ID` (the ingress
  and SSE alone). The ratio is replay over live.
- `/health`: one client after another, then 20 at once. /health asks JupyterHub and every actor
  on each call and caches the registry and quota checks for 15 s. Baseline: `/badge.svg`, a
  static answer through the same Serve proxy and replica, measured the same way.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from typing import Any

import httpx

from bench import resolve
from bench.harness import BenchStack, bench_stack, read_stream

LOG_LINES = 5000
REPLAYS = 5
SEQUENTIAL_REQUESTS = 500
CONCURRENT_CLIENTS = 20
REQUESTS_PER_CLIENT = 50


def _printed_line(event: dict[str, Any]) -> bool:
    return event["phase"] == "building" and str(event.get("message", "")).strip().isdigit()


async def sse_rates(bench: BenchStack) -> dict[str, Any]:
    """Events per second of a 5,000-line build log: live, then replayed by the ingress."""
    repo = bench.add_repo("chatty", {"requirements.txt": "", "postBuild": f"#!/bin/bash\nseq 1 {LOG_LINES}\n"})
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
        live = await read_stream(client, bench.build_url(repo))
        if not live.ready:
            raise RuntimeError(f"the chatty build did not end ready: {live.outcome}")
        printed = [at for event, at in zip(live.events, live.arrivals, strict=True) if _printed_line(event)]
        if len(printed) != LOG_LINES:
            raise RuntimeError(f"expected {LOG_LINES} postBuild lines as events, got {len(printed)}")
        live_rate = (len(printed) - 1) / (printed[-1] - printed[0])
        replay_rates = []
        for _ in range(REPLAYS):
            replay = await read_stream(client, bench.build_url(repo), headers={"Last-Event-ID": live.ids[0]})
            if len(replay.events) != len(live.events) - 1:
                raise RuntimeError(f"the replay sent {len(replay.events)} events, not {len(live.events) - 1}")
            replay_rates.append(len(replay.events) / replay.seconds)
    bench.stop_sessions()
    replay_rate = statistics.median(replay_rates)
    return {
        "events_in_stream": len(live.events),
        "live_build_log_events_per_second": round(live_rate),
        "replay_events_per_second": round(replay_rate),
        "replay_vs_live": round(replay_rate / live_rate, 2),
    }


def sequential_rate(url: str) -> tuple[float, Counter[int]]:
    statuses: Counter[int] = Counter()
    with httpx.Client(timeout=30) as client:
        for _ in range(20):  # warm the connection and the replica's caches
            client.get(url)
        started = time.perf_counter()
        for _ in range(SEQUENTIAL_REQUESTS):
            statuses[client.get(url).status_code] += 1
        return SEQUENTIAL_REQUESTS / (time.perf_counter() - started), statuses


async def concurrent_rate(url: str) -> tuple[float, Counter[int]]:
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=CONCURRENT_CLIENTS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one_client() -> None:
            for _ in range(REQUESTS_PER_CLIENT):
                statuses[(await client.get(url)).status_code] += 1

        await asyncio.gather(*(client.get(url) for _ in range(CONCURRENT_CLIENTS)))  # open the connections
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(CONCURRENT_CLIENTS)))
        return CONCURRENT_CLIENTS * REQUESTS_PER_CLIENT / (time.perf_counter() - started), statuses


def request_rates(bench: BenchStack, path: str) -> dict[str, Any]:
    sequential, statuses = sequential_rate(bench.url + path)
    concurrent, more = asyncio.run(concurrent_rate(bench.url + path))
    return {
        "sequential_per_second": round(sequential),
        f"{CONCURRENT_CLIENTS}_clients_per_second": round(concurrent),
        "statuses": {str(code): n for code, n in sorted((statuses + more).items())},
    }


def run() -> dict[str, object]:
    resolutions = resolve.run()  # a Ray of its own, shut down before the stack starts
    with bench_stack("binder-bench-throughput-") as bench:
        sse = asyncio.run(sse_rates(bench))
        health = request_rates(bench, "health")
        badge = request_rates(bench, "badge.svg")
    concurrent_key = f"{CONCURRENT_CLIENTS}_clients_per_second"
    return {
        "ref_resolutions": resolutions,
        "sse": sse,
        "health": health,
        "badge_baseline": badge,
        "health_vs_badge_sequential": round(health["sequential_per_second"] / badge["sequential_per_second"], 2),
        "health_vs_badge_concurrent": round(health[concurrent_key] / badge[concurrent_key], 2),
    }
