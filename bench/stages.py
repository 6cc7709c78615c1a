"""Launch latency with a cached image, request to `ready`, at 1 and at 20 concurrent users, by stage.

On the real embedded stack (git daemon, JupyterHub, Ray, the actors, Serve on loopback), with a
requirements.txt repository built once beforehand. Each condition makes 20 launches, sessions
stopped between rounds:

- by stage, through `launch.launch_events` itself (the flow the ingress streams), its stages timed
  as they end: resolve (RefResolver.resolve), cache check (ImageCache.exists), spawn
  (SessionManager.launch, call to `ready`: hub user, token, server start, the hub's progress stream);
- end to end, over HTTP `/build` streams; "rest" is its median minus the direct path's (Serve's
  proxy and ingress, the launch registry, SSE framing, the client). The two come from different
  rounds, so run-to-run noise (a few hundred ms on 2 cores) can exceed it, and make it negative.

Control-plane time is everything but the Jupyter server's start, taken two ways:
- minus the server's own start measured outside the hub: the image's `jupyterhub-singleuser`
  with the spawner's command, environment and arguments, from exec to its first HTTP answer
  (the hub's readiness test); 10 one after another, and 20 at once for the 20-user condition
  (which starts them all in the same instant, unlike launches that queue for admission, so at
  20 users it is shown but not subtracted);
- minus the hub's own "User <name> took N seconds to start" for each launch (spawner start,
  server start and the hub's bookkeeping around them: an upper bound on the server's start, so a
  lower bound on the control plane). Paired launch by launch on the direct path, this one does
  not mix rounds: it is the headline figure, and the by-stage split uses it.
Baseline: the first, uncached click on the same repository, in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import BenchStack, bench_stack, read_streams, summary
from binder_actors.actors import ActorHandles
from binder_actors.builders.local import server_environment, session_command
from binder_actors.launch import LaunchStage, launch_events
from binder_actors.registries.local import LocalImage, LocalImageStore
from binder_actors.spawners import BinderSpawnerMixin
from serve_app.embedded import free_port

LAUNCHES = 20
CONCURRENT_USERS = 20
SEQUENTIAL_SERVER_STARTS = 10
CONTROL_PLANE_TARGET_MS = 50
HUB_SPAWN_LINE = re.compile(r"User (\S+) took ([\d.]+) seconds to start")
SERVER_START_TIMEOUT = 120.0


async def staged_launch(actors: ActorHandles, provider: str, spec: str, image_prefix: str) -> dict[str, float | str]:
    """One launch through `launch.launch_events` (the flow the ingress streams), timed per stage (seconds)."""
    ended: dict[str, float] = {}

    def stage_ended(stage: LaunchStage) -> None:
        ended[stage] = time.perf_counter()

    started = time.perf_counter()
    ready = None
    async for event in launch_events(actors, provider, spec, image_prefix=image_prefix, on_stage=stage_ended):
        if event.phase == "failed":
            raise RuntimeError(f"launch failed: {event.message}")
        ready = event
    done = time.perf_counter()
    if "found" not in ended:
        raise RuntimeError(f"{spec} was not cached: the benchmark builds it first")
    assert ready is not None and ready.phase == "ready" and ready.url
    return {
        "resolve": ended["resolved"] - started,
        "cache_check": ended["found"] - ended["resolved"],
        "spawn": done - ended["found"],
        "total": done - started,
        "user": ready.url.split("/user/", 1)[1].split("/", 1)[0],
    }


async def _staged_round(bench: BenchStack, provider_spec: str, concurrent: int) -> list[dict[str, float | str]]:
    provider, spec = provider_spec.split("/", 1)
    prefix = bench.stack.config.registry.image_prefix
    if concurrent == 1:
        return [await staged_launch(bench.actors, provider, spec, prefix) for _ in range(LAUNCHES)]
    return list(await asyncio.gather(*(staged_launch(bench.actors, provider, spec, prefix) for _ in range(concurrent))))


async def _http_round(bench: BenchStack, provider_spec: str, concurrent: int) -> list[float]:
    url = bench.build_url(provider_spec)
    streams = []
    if concurrent == 1:
        for _ in range(LAUNCHES):
            streams += await read_streams(url, 1)
    else:
        streams = await read_streams(url, concurrent)
    failures = [stream.outcome for stream in streams if not stream.ready]
    if failures:
        raise RuntimeError(f"{len(failures)} launches did not end ready: {failures[0]}")
    return [stream.seconds for stream in streams]


async def server_own_start(image: LocalImage, home: Path, hub_api_url: str, name: str) -> float:
    """Seconds from exec of the image's `jupyterhub-singleuser`, as the spawner runs it, to its first HTTP answer."""
    shutil.copytree(image.repo_dir, home, symlinks=True)
    port = free_port()
    prefix = f"/user/{name}/"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        **server_environment(image, home),
        # What JupyterHub gives a server; the token is only checked when a request arrives.
        "JUPYTERHUB_API_URL": hub_api_url,
        "JUPYTERHUB_API_TOKEN": "unused-outside-the-hub",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{name}",
        "JUPYTERHUB_USER": name,
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": json.dumps([f"access:servers!server={name}/"]),
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps([f"access:servers!server={name}/"]),
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_ACTIVITY_URL": f"{hub_api_url}/users/{name}/activity",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
        "JUPYTERHUB_DEFAULT_URL": "/lab",
        "JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1",
    }
    server = [str(image.env_dir / "bin" / "jupyterhub-singleuser"), *BinderSpawnerMixin().binder_args()]
    if os.geteuid() == 0:  # as LocalBinderSpawner does
        server.append("--allow-root")
    log_path = home.with_suffix(".log")
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *session_command(image, home, server), cwd=home, env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            while time.perf_counter() - started < SERVER_START_TIMEOUT:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}{prefix}api")).status_code < 500:
                        return time.perf_counter() - started
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), 0.02)
                    tail = log_path.read_text(errors="replace").splitlines()[-10:]
                    raise RuntimeError("jupyterhub-singleuser exited while starting:\n" + "\n".join(tail))
        raise RuntimeError(f"jupyterhub-singleuser did not answer within {SERVER_START_TIMEOUT:g}s; see {log_path}")
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)
            await process.wait()


async def _server_starts(bench: BenchStack, image: LocalImage, concurrent: int) -> list[float]:
    assert bench.stack.hub is not None
    hub_api_url = f"http://127.0.0.1:{bench.stack.hub.env['BINDER_HUB_API_PORT']}/hub/api"
    folder = bench.work / f"own-start-{concurrent}"
    folder.mkdir()
    if concurrent == 1:
        return [
            await server_own_start(image, folder / f"s{i}", hub_api_url, f"own-{i}")
            for i in range(SEQUENTIAL_SERVER_STARTS)
        ]
    return list(
        await asyncio.gather(
            *(server_own_start(image, folder / f"s{i}", hub_api_url, f"own-{i}") for i in range(concurrent))
        )
    )


def hub_reported_starts(log_path: Path) -> dict[str, float]:
    """user -> seconds, from the hub's "User <name> took N seconds to start" lines."""
    return {
        match.group(1): float(match.group(2)) for match in HUB_SPAWN_LINE.finditer(log_path.read_text(errors="replace"))
    }


def _condition(
    staged: list[dict[str, float | str]], http: list[float], own_starts: list[float], hub_starts: dict[str, float]
) -> dict[str, Any]:
    """One condition's figures; the by-stage split pairs each direct launch with the hub's own timing of it."""

    def stage(name: str) -> list[float]:
        return [float(launch[name]) for launch in staged]

    paired = [launch for launch in staged if str(launch["user"]) in hub_starts]
    if not paired:
        raise RuntimeError("the hub logged no 'took N seconds to start' line for these launches")
    hub_taken = [hub_starts[str(launch["user"])] for launch in paired]
    spawn_outside_hub_start = [float(launch["spawn"]) - hub_starts[str(launch["user"])] for launch in paired]
    total_outside_hub_start = [float(launch["total"]) - hub_starts[str(launch["user"])] for launch in paired]
    http_median = statistics.median(http)
    direct_median = statistics.median(stage("total"))
    rest = http_median - direct_median
    return {
        "launches": len(staged),
        "end_to_end_http_s": summary(http),
        "end_to_end_http_runs_s": [round(seconds, 2) for seconds in http],
        "direct_total_s": summary(stage("total")),
        "direct_total_runs_s": [round(seconds, 2) for seconds in stage("total")],
        "resolve_ms": summary([1000 * s for s in stage("resolve")], 2),
        "cache_check_ms": summary([1000 * s for s in stage("cache_check")], 2),
        "spawn_s": summary(stage("spawn")),
        "rest_ingress_sse_ms": round(1000 * rest, 1),
        "server_own_start_outside_hub_s": {**summary(own_starts), "starts": len(own_starts)},
        "hub_reported_spawn_s": summary(hub_taken),
        "hub_reported_spawn_runs_s": [round(seconds, 2) for seconds in hub_taken],
        "control_plane_ms": {
            "direct_minus_hub_reported_spawn_paired": round(1000 * statistics.median(total_outside_hub_start), 1),
            "direct_minus_own_start_outside_hub": round(1000 * (direct_median - statistics.median(own_starts)), 1),
            "http_minus_own_start_outside_hub": round(1000 * (http_median - statistics.median(own_starts)), 1),
        },
        "by_stage_median_ms": {
            "resolve": round(1000 * statistics.median(stage("resolve")), 2),
            "cache_check": round(1000 * statistics.median(stage("cache_check")), 2),
            "spawn_control_plane": round(1000 * statistics.median(spawn_outside_hub_start), 1),
            "server_start_hub_reported": round(1000 * statistics.median(hub_taken), 1),
            "rest_ingress_sse": round(1000 * rest, 1),
        },
    }


def run() -> dict[str, object]:
    with bench_stack("binder-bench-stages-") as bench:
        bench.launch(bench.add_repo("warmup", {"requirements.txt": ""}))  # installs the shared server stack
        bench.stop_sessions()
        repo = bench.add_repo("stages", {"requirements.txt": "tabulate==0.9.0\n"})
        uncached = bench.launch(repo).seconds
        first = bench.launch(repo)  # the image is cached now; this one only warms the hub's pages
        image = LocalImageStore(bench.stack.config.images_dir).read(first.events[-1]["image"])
        assert image is not None
        bench.stop_sessions()

        conditions: dict[str, dict[str, Any]] = {}
        for users in (1, CONCURRENT_USERS):
            staged = asyncio.run(_staged_round(bench, repo, users))
            bench.stop_sessions()
            http = asyncio.run(_http_round(bench, repo, users))
            bench.stop_sessions()
            own_starts = asyncio.run(_server_starts(bench, image, users))
            assert bench.stack.hub is not None
            hub_starts = hub_reported_starts(bench.stack.hub.log_path)
            conditions[f"users_{users}"] = _condition(staged, http, own_starts, hub_starts)
            print(f"{users} user(s): {conditions[f'users_{users}']['by_stage_median_ms']}", flush=True)

    one = conditions["users_1"]
    cached = one["end_to_end_http_s"]["median"]
    control_plane = one["control_plane_ms"]["direct_minus_hub_reported_spawn_paired"]
    return {
        "uncached_first_click_s": round(uncached, 2),
        **conditions,
        "cached_vs_uncached": round(cached / uncached, 3),
        "control_plane_target_ms": CONTROL_PLANE_TARGET_MS,
        "control_plane_target_met": control_plane < CONTROL_PLANE_TARGET_MS,
    }
