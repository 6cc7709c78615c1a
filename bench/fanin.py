"""Fan-in: N concurrent first clicks (HTTP `/build` streams) on one uncached repository.

On the real embedded stack, with a tiny repository (an empty requirements.txt),
BINDER_MAX_SESSIONS above N and BINDER_LAUNCH_TIMEOUT=300. Measured: builds started for it
(BuildScheduler's counter; must be 1), streams that end `ready`, and the time from the clicks to
the last `ready`. N is 200 first; when not every click ends ready (2 cores; JupyterHub's
concurrent_spawn_limit of 100), the attempt is recorded with its failures and the next tries
100, then 50, each on a new repository. Baseline: one first click alone on another new
repository, in the same run.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from typing import Any

import ray

from bench.harness import BenchStack, bench_stack, read_streams, summary

CLICKS = (200, 100, 50)
LAUNCH_TIMEOUT = 300  # seconds; bounds an attempt that cannot hold its N (the default is 600)
TINY_REPO = {"requirements.txt": "", "README.md": "A tiny repository for the fan-in benchmark.\n"}


def fan_in(bench: BenchStack, clicks: int) -> dict[str, Any]:
    """`clicks` first clicks at once on a new repository; every session is stopped afterwards."""
    repo = bench.add_repo(f"fanin-{clicks}", TINY_REPO)
    builds_before = ray.get(bench.actors.build_scheduler.stats.remote()).builds_started
    started = time.perf_counter()
    streams = asyncio.run(read_streams(bench.build_url(repo), clicks))
    builds = ray.get(bench.actors.build_scheduler.stats.remote()).builds_started - builds_before
    ready = sorted(stream.arrivals[-1] - started for stream in streams if stream.ready)
    built = [
        next(at for event, at in zip(s.events, s.arrivals, strict=True) if event["phase"] == "built") - started
        for s in streams
        if any(event["phase"] == "built" for event in s.events)
    ]
    outcomes = Counter(stream.outcome for stream in streams if not stream.ready)
    result: dict[str, Any] = {
        "clicks": clicks,
        "builds_started": builds,
        "ready": len(ready),
        "all_ready": len(ready) == clicks,
        "failures": dict(outcomes.most_common(5)),
        "seconds_to_first_built": round(min(built), 2) if built else None,
        "seconds_to_last_ready": round(ready[-1], 2) if ready else None,
        "ready_s": summary(ready, 2) if ready else None,
        "ready_times_s": [round(at, 2) for at in ready],
    }
    print(f"fan-in of {clicks}: {json.dumps(result)}", flush=True)  # kept even if stopping them fails
    stopped_at = time.perf_counter()
    result["sessions_stopped"] = bench.stop_sessions()
    result["seconds_to_stop_all"] = round(time.perf_counter() - stopped_at, 1)
    return result


def run() -> dict[str, object]:
    with bench_stack("binder-bench-fanin-", max_sessions=max(CLICKS) + 50, launch_timeout=LAUNCH_TIMEOUT) as bench:
        bench.launch(bench.add_repo("warmup", TINY_REPO))  # installs the shared server stack
        bench.stop_sessions()
        single = bench.launch(bench.add_repo("single", TINY_REPO)).seconds
        bench.stop_sessions()
        attempts = []
        for clicks in CLICKS:
            attempt = fan_in(bench, clicks)
            attempts.append(attempt)
            if attempt["all_ready"]:
                break
    held = next((a for a in attempts if a["all_ready"]), None)
    return {
        "single_first_click_s": round(single, 2),
        "attempts": attempts,
        "largest_all_ready": held["clicks"] if held else None,
        "one_build_each_time": all(a["builds_started"] == 1 for a in attempts),
        "last_ready_vs_single_click": round(held["seconds_to_last_ready"] / single, 1) if held else None,
        "median_ready_vs_single_click": round(statistics.median(held["ready_times_s"]) / single, 1) if held else None,
    }
