"""200 concurrent launches of a built image against a session quota of 100, three rounds in a row.

The promise (issue 10): every request ends `ready` or with the quota message, never more sessions
than the quota run at once, and after the culler has removed them all, the stack's memory is back
to its baseline and no server process is left behind, round after round. Each round: 200 clients
open the same `/build` stream at once on the real embedded stack (BINDER_MAX_SESSIONS=100), then
ActivityMonitor culls everything idle (`cull_once(timeout=0)`, what the periodic sweep does once
sessions are idle), and the stack is measured as bench/memory.py measures it. A broken promise
raises: this benchmark fails rather than records it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import psutil
import ray

from bench.harness import BenchStack, bench_stack, read_streams, summary
from bench.memory import stack_memory, stack_total
from binder_actors.admission import HUB_FULL_MESSAGE

CLIENTS = 200
QUOTA = 100
ROUNDS = 3
CULL_DEADLINE = 600.0


def server_processes() -> int:
    """Session servers anywhere on this machine (`jupyterhub-singleuser`, which execs `-m jupyterhub.singleuser`)."""
    count = 0
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "jupyterhub-singleuser" in command or "jupyterhub.singleuser" in command:
            count += 1
    return count


def hub_sessions(bench: BenchStack) -> int:
    return len(ray.get(bench.actors.session_manager.list_sessions.remote()))


def cull_all(bench: BenchStack) -> float:
    """Seconds until the culler has removed every session and no server process is left."""
    started = time.perf_counter()
    deadline = time.monotonic() + CULL_DEADLINE
    while hub_sessions(bench) or server_processes():
        if time.monotonic() > deadline:
            left = f"{hub_sessions(bench)} sessions, {server_processes()} servers"
            raise RuntimeError(f"after {CULL_DEADLINE:g}s of culling: {left} left")
        ray.get(bench.actors.activity_monitor.cull_once.remote(timeout=0))
    return round(time.perf_counter() - started, 1)


def one_round(bench: BenchStack, provider_spec: str, baseline_rss: float) -> dict[str, object]:
    started = time.perf_counter()
    streams = asyncio.run(read_streams(bench.build_url(provider_spec), CLIENTS))
    seconds = round(time.perf_counter() - started, 1)
    outcomes = Counter("ready" if s.ready else "quota" if HUB_FULL_MESSAGE in s.outcome else s.outcome for s in streams)
    running = hub_sessions(bench)
    peak_rss = stack_total(stack_memory(), "rss_mb")
    if set(outcomes) - {"ready", "quota"}:
        raise RuntimeError(f"requests that ended neither ready nor with the quota message: {outcomes}")
    if outcomes["ready"] > QUOTA or running > QUOTA:
        raise RuntimeError(f"over the quota of {QUOTA}: {outcomes['ready']} ready, {running} running")
    cull_seconds = cull_all(bench)
    after_rss = stack_total(stack_memory(), "rss_mb")
    return {
        "ready": outcomes["ready"],
        "quota_message": outcomes["quota"],
        "seconds_to_last_answer": seconds,
        "ready_seconds": summary([s.seconds for s in streams if s.ready], 2),
        "quota_answer_seconds": summary([s.seconds for s in streams if not s.ready] or [0.0], 2),
        "stack_rss_mb_with_sessions": peak_rss,
        "cull_seconds": cull_seconds,
        "stack_rss_mb_after_cull": after_rss,
        "rss_mb_over_baseline": round(after_rss - baseline_rss, 1),
        "server_processes_left": server_processes(),
    }


def run() -> dict[str, object]:
    with bench_stack("binder-bench-load-", max_sessions=QUOTA) as bench:
        repo = bench.add_repo("load", {"requirements.txt": "tabulate==0.9.0\n"})
        bench.launch(repo)  # built, and every actor has worked once
        cull_all(bench)
        baseline = stack_total(stack_memory(), "rss_mb")
        rounds = [one_round(bench, repo, baseline) for _ in range(ROUNDS)]
    return {
        "clients": CLIENTS,
        "quota": QUOTA,
        "baseline_stack_rss_mb": baseline,
        "rounds": rounds,
    }
