"""ServerPool: a cached launch with a pooled server (hot) against the same launch without a pool (cold),
one at a time and 20 clicks at once, request to `ready` over HTTP, each stack on loopback in turn.

The pool is full before every timed launch (waited for, untimed): the figures are of hits.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray

from bench.harness import BenchStack, bench_stack, read_streams, summary
from tests.helpers import wait_for

REPO = {"requirements.txt": "tabulate==0.9.0\n"}
SEQUENTIAL = 5
CLICKS = 20
FILL_SECONDS = 600.0


def wait_for_pool(bench: BenchStack, image: str, size: int) -> None:
    def full() -> bool:
        return ray.get(bench.actors.server_pool.status.remote()).free.get(image, 0) >= size

    wait_for(full, FILL_SECONDS, f"{size} pooled servers of {image}", interval=0.5)


def measure(bench: BenchStack, spec: str, pool_size: int) -> dict[str, Any]:
    image = bench.launch(spec).events[-1]["image"]  # the build, and the pool learns the image
    bench.stop_sessions()
    sequential = []
    for _ in range(SEQUENTIAL):
        if pool_size:
            wait_for_pool(bench, image, pool_size)
        sequential.append(bench.launch(spec).seconds)
        bench.stop_sessions()
    if pool_size:
        wait_for_pool(bench, image, pool_size)
    started = time.perf_counter()
    streams = asyncio.run(read_streams(bench.build_url(spec), CLICKS))
    wall = time.perf_counter() - started
    ready = [stream.seconds for stream in streams if stream.ready]
    bench.stop_sessions()
    status = ray.get(bench.actors.server_pool.status.remote())
    return {
        "launch_s": summary(sequential),
        "clicks_at_once": {"clicks": CLICKS, "ready": len(ready), "wall_s": round(wall, 2), **summary(ready)},
        "pool_hits": status.hits,
        "pool_misses": status.misses,
    }


def run() -> dict[str, object]:
    results: dict[str, object] = {}
    with bench_stack("binder-bench-nopool-") as bench:
        results["cold"] = measure(bench, bench.add_repo("pooled", REPO), 0)
    with bench_stack(
        "binder-bench-pool-", pool=[{"pattern": ".*pooled", "size": CLICKS}], max_sessions=2 * CLICKS
    ) as bench:
        results["hot"] = measure(bench, bench.add_repo("pooled", REPO), CLICKS)
    hot, cold = results["hot"], results["cold"]
    assert isinstance(hot, dict) and isinstance(cold, dict)
    results["hot_over_cold_launch"] = round(hot["launch_s"]["median"] / cold["launch_s"]["median"], 3)
    results["hot_over_cold_clicks_median"] = round(
        hot["clicks_at_once"]["median"] / cold["clicks_at_once"]["median"], 3
    )
    return results
