"""What `python -m bench scale` measures besides launches: CPU and memory of each part of the stack,
and the cost of everything that scans sessions (a culling sweep, `sessions`, /health, admission's count).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from bench.loopback_stack import LoopbackStack

MB = 1024 * 1024
ACTORS = ("RefResolver", "ImageCache", "BuildScheduler", "SessionManager", "ServerPool", "ActivityMonitor")


def part(process: psutil.Process) -> str:
    """Which part of the stack a process is: each actor on its own, the hub, the proxy, Serve, Ray."""
    if process.pid == os.getpid():
        return "driver (and the load generator)"
    command = " ".join(process.cmdline())
    if "bench.loopback_server" in command:
        return "loopback server (test tool)"
    if process.name().startswith("git") or command.startswith("git"):
        return "git daemon (test upstream)"
    if "configurable-http-proxy" in command:
        return "configurable-http-proxy"
    if "-m jupyterhub " in command:
        return "jupyterhub"
    for actor in ACTORS:
        if command.startswith(f"ray::{actor}"):
            return actor
    if command.startswith(("ray::ServeController", "ray::ServeReplica", "ray::Proxy", "ray::Serve")):
        return "serve (controller, proxy, replica)"
    if command.startswith("ray::"):
        return "idle ray workers"
    return "ray core (gcs, raylet, agents)"


@dataclass
class ProcessSampler:
    """CPU seconds and peak RSS per part, over this process and its descendants (sampled)."""

    cpu_start: dict[int, tuple[str, float]] = field(default_factory=dict)
    cpu_last: dict[int, tuple[str, float]] = field(default_factory=dict)
    rss_peak_mb: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def sample(self) -> None:
        me = psutil.Process()
        rss: dict[str, float] = {}
        for process in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                name = part(process)
                times = process.cpu_times()
                cpu = times.user + times.system
                self.cpu_start.setdefault(process.pid, (name, cpu))
                self.cpu_last[process.pid] = (name, cpu)
                rss[name] = rss.get(name, 0.0) + process.memory_info().rss / MB
        for name, value in rss.items():
            self.rss_peak_mb[name] = max(self.rss_peak_mb.get(name, 0.0), value)

    def report(self) -> dict[str, dict[str, float]]:
        """Per part: the share of one core it used since the first sample, and its peak RSS."""
        seconds = max(time.monotonic() - self.started, 1e-9)
        cpu: dict[str, float] = {}
        for pid, (name, last) in self.cpu_last.items():
            cpu[name] = cpu.get(name, 0.0) + last - self.cpu_start[pid][1]
        return {
            name: {"cpu_cores": round(cpu.get(name, 0.0) / seconds, 3), "rss_peak_mb": round(self.rss_peak_mb[name], 1)}
            for name in sorted(self.rss_peak_mb)
        }


async def timed(call: Any) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def scans(bench: LoopbackStack, client: httpx.AsyncClient) -> dict[str, float]:
    """Seconds of each session-scanning operation, one after another, at the current load.

    - cull_sweep: ActivityMonitor's sweep with the configured timeout (nothing is idle, nothing culled);
    - cull_sweep_reading_all: a sweep that must read every session (a max age set, nothing over it);
    - sessions: SessionManager.list_sessions, what `binder-actors sessions` prints (every session);
    - health: GET /health through the ingress (the session count comes from admission's list);
    - session_count: admission's count, listing the hub only when its list is due.
    """
    assert bench.actors is not None
    monitor, manager = bench.actors.activity_monitor, bench.actors.session_manager
    return {
        "cull_sweep_s": await timed(monitor.cull_once.remote()),
        "cull_sweep_reading_all_s": await timed(monitor.cull_once.remote(max_age=10**9)),
        "sessions_s": await timed(manager.list_sessions.remote()),
        "health_s": await timed(client.get(f"{bench.url}health")),
        "session_count_s": await timed(manager.session_count.remote()),
    }


async def sample_forever(sampler: ProcessSampler, every: float = 5.0) -> None:
    while True:
        await asyncio.to_thread(sampler.sample)
        await asyncio.sleep(every)
