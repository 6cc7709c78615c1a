"""Resident memory of the whole embedded stack, idle and with 20 sessions, without the sessions' servers.

On the real embedded stack, every process is found with psutil from this process down (Ray's
gcs_server, raylet and helpers, the actors and Serve's controller, proxy and replica as Ray
workers, JupyterHub and its configurable-http-proxy) and summed by component; the driver (this
process, which holds the Ray driver as `binder-actors serve` does) is a component too. RSS counts
pages shared between processes once per process; USS (pages only that process holds) is given
beside it. The sessions' `jupyterhub-singleuser` servers (and anything under them) are reported
apart, as is the git daemon that stands in for GitHub. Baseline: what the stack grows by per
session, against what one session's own server holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from typing import Any

import psutil

from bench.harness import BenchStack, bench_stack, read_streams

SESSIONS = 20
MB = 1024 * 1024


def component(process: psutil.Process) -> str:
    """Which part of the stack a process is, from its name and command line."""
    if process.pid == os.getpid():
        return "driver"
    command = " ".join(process.cmdline())
    if "jupyterhub-singleuser" in command or "-m jupyterhub.singleuser" in command:
        return "session servers"
    if process.name().startswith("git") or command.startswith("git"):
        return "git daemon (test upstream)"
    if "configurable-http-proxy" in command:
        return "configurable-http-proxy"
    if "-m jupyterhub " in command:
        return "jupyterhub"
    if command.startswith(("ray::Serve", "ray::Proxy")):
        return "serve (controller, proxy, replica)"
    if command.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent")):
        return "ray core (gcs, raylet, agents)"
    if command.startswith("ray::"):
        return "the actors (and idle ray workers)"
    return "ray core (gcs, raylet, agents)"


def stack_memory() -> dict[str, dict[str, float]]:
    """MB of RSS and USS by component, over this process and all its descendants."""
    me = psutil.Process()
    processes = [me, *me.children(recursive=True)]
    session_pids: set[int] = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if component(process) == "session servers":
                session_pids.add(process.pid)
                session_pids.update(child.pid for child in process.children(recursive=True))
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"rss_mb": 0.0, "uss_mb": 0.0, "processes": 0})
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            name = "session servers" if process.pid in session_pids else component(process)
            memory = process.memory_full_info()
            totals[name]["rss_mb"] += memory.rss / MB
            totals[name]["uss_mb"] += memory.uss / MB
            totals[name]["processes"] += 1
    return {name: {key: round(value, 1) for key, value in figures.items()} for name, figures in sorted(totals.items())}


def stack_total(by_component: dict[str, dict[str, float]], key: str) -> float:
    apart = {"session servers", "git daemon (test upstream)"}
    return round(sum(figures[key] for name, figures in by_component.items() if name not in apart), 1)


def _snapshot() -> dict[str, Any]:
    by_component = stack_memory()
    return {
        "stack_rss_mb": stack_total(by_component, "rss_mb"),
        "stack_uss_mb": stack_total(by_component, "uss_mb"),
        "by_component": by_component,
    }


def _launch_sessions(bench: BenchStack, provider_spec: str) -> None:
    streams = asyncio.run(read_streams(bench.build_url(provider_spec), SESSIONS))
    failures = [stream.outcome for stream in streams if not stream.ready]
    if failures:
        raise RuntimeError(f"{len(failures)} of {SESSIONS} launches did not end ready: {failures[0]}")


def run() -> dict[str, object]:
    with bench_stack("binder-bench-memory-") as bench:
        just_started = _snapshot()
        repo = bench.add_repo("memory", {"requirements.txt": "tabulate==0.9.0\n"})
        bench.launch(repo)  # the image is built and every actor has worked once
        bench.stop_sessions()
        idle = _snapshot()
        _launch_sessions(bench, repo)
        busy = _snapshot()
        bench.stop_sessions()
    servers = busy["by_component"].get("session servers", {"rss_mb": 0.0, "uss_mb": 0.0, "processes": 0})
    per_session_growth = (busy["stack_rss_mb"] - idle["stack_rss_mb"]) / SESSIONS
    per_server = servers["rss_mb"] / SESSIONS
    return {
        "just_started": just_started,
        "idle_after_a_launch": idle,
        f"with_{SESSIONS}_sessions": busy,
        "session_servers_rss_mb": {
            "total": servers["rss_mb"],
            "per_session": round(per_server, 1),
            "uss_per_session": round(servers["uss_mb"] / SESSIONS, 1),
        },
        "stack_growth_per_session_rss_mb": round(per_session_growth, 1),
        "stack_growth_vs_server_per_session": round(per_session_growth / per_server, 3) if per_server else None,
    }
