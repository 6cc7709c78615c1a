"""Launch latency on the embedded default: first launch (a build) and cached launch, request to ready.

Runs the real stack (git daemon, JupyterHub, Ray, Serve) on loopback.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import ray

from binder_actors.actors import ActorHandles, get_actors
from binder_actors.config import BinderConfig
from serve_app.embedded import free_port, start_embedded
from tests.helpers import git_spec, read_events, start_git_server

RUNS = 5


def timed_launch(base_url: str, path: str, actors: ActorHandles) -> float:
    """Seconds from request to ready event; the session is stopped afterwards, untimed."""
    started = time.perf_counter()
    events = read_events(base_url, path)
    elapsed = time.perf_counter() - started
    if events[-1]["phase"] != "ready":
        raise RuntimeError(f"launch failed: {events[-1]}")
    user = events[-1]["url"].rstrip("/").rsplit("/", 1)[-1]
    ray.get(actors.session_manager.stop.remote(user))
    return elapsed


def run() -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="binder-bench-"))
    git = start_git_server(work / "git")
    config = BinderConfig(data_dir=work / "data", port=free_port(), cull_every=3600)
    stack = start_embedded(config)
    actors = get_actors(config.namespace)
    results: dict[str, object] = {}
    try:

        def repo(name: str) -> str:
            git.add(name, {"requirements.txt": "tabulate==0.9.0\n"})
            return f"build/git/{git_spec(git.url(name), 'main')}"

        cold = timed_launch(stack.url, repo("cold"), actors)
        results["first_launch_cold_server_stack_s"] = round(cold, 2)

        first = [timed_launch(stack.url, repo(f"first-{i}"), actors) for i in range(RUNS)]
        results["first_launch_s"] = {
            "median": round(statistics.median(first), 2),
            "runs": [round(x, 2) for x in first],
        }

        cached_path = repo("cached")
        timed_launch(stack.url, cached_path, actors)
        cached = [timed_launch(stack.url, cached_path, actors) for _ in range(RUNS * 2)]
        results["cached_launch_s"] = {
            "median": round(statistics.median(cached), 3),
            "runs": [round(x, 3) for x in cached],
        }
    finally:
        stack.stop()
        git.stop()

    return results
