"""SessionManager: launch() to ready with an already-built image, and the time of a culling sweep.

20 launches one after another (each server kept running), then a sweep that culls nothing and a
sweep that culls all 20, on the real stack (JupyterHub, Ray, the actors) on loopback.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import ray

from bench.harness import percentile
from binder_actors.actors import get_actors
from binder_actors.config import BinderConfig
from binder_actors.models import LaunchRequest, ResolveRequest
from binder_actors.names import image_name
from serve_app.embedded import free_port, start_embedded
from tests.helpers import git_spec, read_events, start_git_server, wait_for

LAUNCHES = 20


async def timed_launch(manager, request: LaunchRequest) -> float:
    started = time.perf_counter()
    async for ref in manager.launch.remote(request):
        event = await ref
        if event.phase == "failed":
            raise RuntimeError(event.message)
    return time.perf_counter() - started


def run() -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="binder-bench-sessions-"))
    git = start_git_server(work / "git")
    git.add("sessions", {"requirements.txt": "tabulate==0.9.0\n"})
    config = BinderConfig(data_dir=work / "data", port=free_port(), cull_every=3600)
    stack = start_embedded(config)
    try:
        actors = get_actors(config.namespace)
        spec = git_spec(git.url("sessions"), "main")
        wait_for(lambda: read_events(stack.url, f"build/git/{spec}")[-1]["phase"] == "ready", 300, "a first launch")
        ray.get(actors.activity_monitor.cull_once.remote(timeout=0))
        resolved = ray.get(actors.ref_resolver.resolve.remote(ResolveRequest(provider="git", spec=spec)))
        request = LaunchRequest(
            image=image_name("", resolved.build_slug, resolved.resolved_ref),
            resolved=resolved,
            binder_request=f"v2/git/{spec}",
            binder_persistent_request=f"v2/git/{resolved.persistent_spec}",
        )
        latencies = [asyncio.run(timed_launch(actors.session_manager, request)) for _ in range(LAUNCHES)]

        started = time.perf_counter()
        idle_sweep = ray.get(actors.activity_monitor.cull_once.remote())
        no_op_seconds = time.perf_counter() - started
        started = time.perf_counter()
        full_sweep = ray.get(actors.activity_monitor.cull_once.remote(timeout=0))
        cull_seconds = time.perf_counter() - started
    finally:
        stack.stop()
        git.stop()
    return {
        "launch_to_ready_s": {
            "launches": LAUNCHES,
            "median": round(statistics.median(latencies), 3),
            "p95": round(percentile(latencies, 0.95), 3),
        },
        "cull_sweep_nothing_to_cull_s": {"checked": idle_sweep.checked, "seconds": round(no_op_seconds, 3)},
        "cull_sweep_culling_all_s": {"culled": len(full_sweep.culled), "seconds": round(cull_seconds, 2)},
    }
