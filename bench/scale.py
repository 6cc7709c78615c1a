"""`python -m bench scale --sessions N --rate R --minutes M`: the control plane under mybinder.org's load.

A TEST TOOL (bench/loopback_stack.py): real Ray, the real actors and ingress, a real JupyterHub
with its own database, and servers answered by one loopback process, so sessions cost nothing and
only the control plane is measured. R launches a minute (cached launches over HTTP `/build`, as
a browser makes them) until N sessions live, then M minutes held; the session-scanning operations
are timed every SCAN_EVERY seconds throughout. With servers that start at once, request to `ready`
is all control plane: resolve and cache check (request to `built`), then SessionManager and the
hub (hub user, token, spawn, the hub's progress, to `ready`).

Ends with one JSON line: sessions (live at the end), launches, errors, launch_rate_per_min
(achieved), control_plane_p50_s / p95_s / p99_s, cull_sweep_s, per-stage latencies, the scans'
costs at the end, CPU and memory of each actor and of the hub. `--bare` runs the same load
against the same hub without binder-actors in front (bench/scale_bare.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.harness import TimedStream, percentile, read_stream
from bench.loopback_stack import LoopbackStack, loopback_stack
from bench.scale_probe import ProcessSampler, sample_forever, scans

SCAN_EVERY = 60.0
LATE_AFTER_SECONDS = 120.0  # a launch still running this long after the last one began counts as an error
LATENCY_WINDOWS = 10  # the latency-against-load series: launches in this many equal slices of the run


def latency_summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    return {name: round(percentile(values, q), 3) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}


def stage_seconds(stream: TimedStream, phase: str) -> float | None:
    """Request to the first event of `phase`."""
    for event, arrival in zip(stream.events, stream.arrivals, strict=True):
        if event.get("phase") == phase:
            return arrival - stream.started
    return None


def outcome_kind(stream: TimedStream) -> str:
    return "ready" if stream.ready else stream.outcome[:120]


def load_series(streams: list[TimedStream], live_at: Callable[[float], int]) -> list[dict[str, Any]]:
    """Latency against load: the launches in equal slices of the run, with the sessions live then."""
    ready = sorted((s for s in streams if s.ready), key=lambda s: s.started)
    if not ready:
        return []
    size = max(1, len(ready) // LATENCY_WINDOWS)
    series = []
    for first in range(0, len(ready), size):
        window = ready[first : first + size]
        series.append(
            {
                "sessions_before": live_at(window[0].started),
                "launches": len(window),
                **latency_summary([s.seconds for s in window]),
            }
        )
    return series


async def run_load(
    launch: Callable[[int], Awaitable[TimedStream]],
    sessions: int,
    rate: float,
    minutes: float,
    periodic: Callable[[], Awaitable[None]] | None = None,
) -> tuple[list[TimedStream], float, float]:
    """`sessions` launches at `rate` a minute, then `minutes` held; returns the streams, start and end of launching."""
    interval = 60.0 / rate
    started = time.perf_counter()
    tasks: list[asyncio.Task[TimedStream]] = []
    periodic_task = asyncio.create_task(_every(periodic, SCAN_EVERY)) if periodic else None
    try:
        for index in range(sessions):
            delay = started + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the load's own schedule, not a synchronisation
            tasks.append(asyncio.create_task(launch(index)))
        done, late = await asyncio.wait(tasks, timeout=LATE_AFTER_SECONDS) if tasks else (set(), set())
        for task in late:
            task.cancel()
        streams = [task.result() if task in done else _late(task) for task in tasks]
        launched = time.perf_counter()
        await asyncio.sleep(60 * minutes)  # holding the load for the time asked
    finally:
        if periodic_task:
            periodic_task.cancel()
    return streams, started, launched


def _late(task: asyncio.Task[TimedStream]) -> TimedStream:
    """A launch not ready LATE_AFTER_SECONDS after the last one began: an error of the run."""
    stream = TimedStream(started=time.perf_counter())
    stream.events.append({"phase": "failed", "message": f"not ready {LATE_AFTER_SECONDS:g}s after the last launch"})
    stream.arrivals.append(time.perf_counter())
    stream.ids.append("")
    return stream


async def _every(call: Callable[[], Awaitable[None]], seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        await call()


def figures(
    streams: list[TimedStream], started: float, launched: float, live: int, sampler: ProcessSampler
) -> dict[str, Any]:
    ready = [s for s in streams if s.ready]
    errors = Counter(outcome_kind(s) for s in streams if not s.ready)
    last_ready = max((s.started + s.seconds for s in ready), default=launched)
    span = max(last_ready - started, 1e-9)
    ready_order = sorted(s.started + s.seconds for s in ready)

    def live_at(moment: float) -> int:
        return sum(1 for end in ready_order if end <= moment)

    total = latency_summary([s.seconds for s in ready])
    built = [b for s in ready if (b := stage_seconds(s, "built")) is not None]
    spawn = [s.seconds - b for s in ready if (b := stage_seconds(s, "built")) is not None]
    return {
        "sessions": live,
        "launches": len(streams),
        "ready": len(ready),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(5)),
        "launch_rate_per_min": round(60 * len(ready) / span, 1),
        "control_plane_p50_s": total["p50"],
        "control_plane_p95_s": total["p95"],
        "control_plane_p99_s": total["p99"],
        "stages_s": {
            "resolve_and_cache_check": latency_summary(built),
            "session_manager_and_hub": latency_summary(spawn),
        },
        "latency_against_load": load_series(streams, live_at),
        "processes": sampler.report(),
    }


async def _scale(bench: LoopbackStack, sessions: int, rate: float, minutes: float) -> dict[str, Any]:
    url = f"{bench.url}build/{bench.provider_spec}"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    sampler = ProcessSampler()
    sampler.sample()
    during: list[dict[str, float]] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=60.0), limits=limits) as client:
        sampling = asyncio.create_task(sample_forever(sampler))

        async def scan() -> None:
            during.append(await scans(bench, client))

        streams, started, launched = await run_load(
            lambda _: read_stream(client, url), sessions, rate, minutes, periodic=scan
        )
        sampler.sample()
        sampling.cancel()
        at_end = await scans(bench, client)
        assert bench.actors is not None
        live = len(await bench.actors.session_manager.list_sessions.remote())
    result = figures(streams, started, launched, live, sampler)
    result["cull_sweep_s"] = round(at_end["cull_sweep_s"], 3)
    result["scans_at_end_s"] = {name: round(value, 3) for name, value in at_end.items()}
    result["scans_max_during_s"] = {name: round(max(scan[name] for scan in during), 3) for name in at_end if during}
    result["loopback"] = bench.loopback_status()
    return result


def run_scale(sessions: int, rate: float, minutes: float, hub_log: Path | None = None) -> dict[str, Any]:
    with loopback_stack(sessions, hub_log=hub_log) as bench:
        result = asyncio.run(_scale(bench, sessions, rate, minutes))
    run = {"mode": "binder-actors", "target_sessions": sessions, "target_rate_per_min": rate, "minutes": minutes}
    return {**run, **result}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench scale",
        description="TEST TOOL: load the real control plane with servers answered by one loopback process.",
    )
    parser.add_argument("--sessions", type=int, default=1000, help="sessions to reach (launches made)")
    parser.add_argument("--rate", type=float, default=500, help="launches a minute")
    parser.add_argument("--minutes", type=float, default=1, help="minutes the sessions are held after the last launch")
    parser.add_argument("--bare", action="store_true", help="the same load on the hub alone, without binder-actors")
    parser.add_argument("--hub-log", type=Path, help="keep a copy of the hub's log there")
    return parser.parse_args(argv)


def main(argv: list[str]) -> dict[str, Any]:
    args = parse(argv)
    if args.bare:
        from bench.scale_bare import run_bare

        result = run_bare(args.sessions, args.rate, args.minutes, args.hub_log)
    else:
        result = run_scale(args.sessions, args.rate, args.minutes, args.hub_log)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":  # `python -m bench.scale ...`: the JSON line only, nothing recorded
    import sys

    main(sys.argv[1:])
