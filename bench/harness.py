"""What the end-to-end benchmarks share: the embedded stack on loopback beside a git daemon, `/build`
streams read over HTTP with the arrival time of every event, and percentiles.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import ray

from binder_actors.actors import ActorHandles, get_actors
from binder_actors.config import BinderConfig
from serve_app.embedded import EmbeddedStack, free_port, start_embedded
from tests.helpers import GitServer, git_spec, start_git_server

STREAM_TIMEOUT = httpx.Timeout(900.0, connect=60.0)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float], digits: int = 3) -> dict[str, float]:
    """Median and p95 of a sample, in its unit."""
    return {"median": round(statistics.median(values), digits), "p95": round(percentile(values, 0.95), digits)}


@dataclass
class TimedStream:
    """One EventSource stream as a client saw it: every event, its `id:` and when it arrived."""

    started: float
    events: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return bool(self.events) and self.events[-1]["phase"] == "ready"

    @property
    def seconds(self) -> float:
        """Request to last event (the ready one, when it is ready)."""
        return self.arrivals[-1] - self.started if self.arrivals else float("nan")

    @property
    def user(self) -> str:
        """The hub user of a ready launch, from its server URL (`.../user/<name>/`)."""
        return self.events[-1]["url"].split("/user/", 1)[1].split("/", 1)[0]

    @property
    def outcome(self) -> str:
        """`ready`, or the message that ended the stream otherwise."""
        if self.ready:
            return "ready"
        if not self.events:
            return "no events"
        return f"{self.events[-1]['phase']}: {str(self.events[-1].get('message', '')).strip()[:160]}"


async def read_stream(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> TimedStream:
    """Read one `/build` stream to its end, timing each event on arrival."""
    stream = TimedStream(started=time.perf_counter())
    event_id = ""
    try:
        async with client.stream("GET", url, headers={"Accept": "text/event-stream", **(headers or {})}) as response:
            if response.status_code != 200:
                await response.aread()
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    stream.arrivals.append(time.perf_counter())
                    stream.events.append(json.loads(line[5:]))
                    stream.ids.append(event_id)
    except httpx.HTTPError as error:  # a stream cut short is an outcome to count, not a crash
        stream.events.append({"phase": "failed", "message": f"HTTP error: {type(error).__name__}: {error}"})
        stream.arrivals.append(time.perf_counter())
        stream.ids.append("")
    return stream


async def read_streams(url: str, count: int) -> list[TimedStream]:
    """`count` clients opening the same stream URL at once."""
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(timeout=STREAM_TIMEOUT, limits=limits) as client:
        return list(await asyncio.gather(*(read_stream(client, url) for _ in range(count))))


@dataclass
class BenchStack:
    """The embedded stack of one benchmark, its actors, and the git daemon serving its repositories."""

    work: Path
    git: GitServer
    stack: EmbeddedStack
    actors: ActorHandles

    @property
    def url(self) -> str:
        return self.stack.url

    def add_repo(self, name: str, files: dict[str, str]) -> str:
        """A new repository on the git daemon; returns its `<provider>/<spec>` at `main`."""
        self.git.add(name, files)
        return f"git/{git_spec(self.git.url(name), 'main')}"

    def build_url(self, provider_spec: str) -> str:
        return f"{self.url}build/{provider_spec}"

    def launch(self, provider_spec: str) -> TimedStream:
        """One launch over HTTP, to its end; raises if it did not end ready."""
        stream = asyncio.run(read_streams(self.build_url(provider_spec), 1))[0]
        if not stream.ready:
            raise RuntimeError(f"launch of {provider_spec} did not end ready: {stream.outcome}")
        return stream

    def stop_sessions(self, timeout: float = 600.0) -> int:
        """Stop every session and delete its user, all at once; returns how many there were.

        Under load the hub answers a user's deletion with 400 while its server is still stopping:
        such users are asked again until the hub has none left.
        """
        listed = ray.get(self.actors.session_manager.list_sessions.remote())
        pending = {session.user for session in listed}
        stopped = len(pending)
        deadline = time.monotonic() + timeout
        while pending:
            refs = {user: self.actors.session_manager.stop.remote(user) for user in sorted(pending)}
            for user, ref in refs.items():
                try:
                    ray.get(ref)
                    pending.discard(user)
                except Exception:  # a server still stopping: asked again below
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} sessions were not stopped within {timeout:g}s")
            if pending:
                time.sleep(1)
        return stopped


@contextmanager
def bench_stack(prefix: str, **settings: Any) -> Iterator[BenchStack]:
    """The real embedded stack (JupyterHub, Ray, the actors, Serve) on a temporary data folder."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    git = start_git_server(work / "git")
    try:
        config = BinderConfig(data_dir=work / "data", port=free_port(), cull_every=3600, **settings)
        stack = start_embedded(config)
        try:
            yield BenchStack(work=work, git=git, stack=stack, actors=get_actors(config.namespace))
        finally:
            stack.stop()
    finally:
        git.stop()
        shutil.rmtree(work, ignore_errors=True)
