"""RefResolver's memory under a stream of distinct specs that do not exist (the bound of its caches).

A RefResolver object in this process (no Ray: the actor is this class), its gh provider pointed at
a GitHub stand-in that answers every commit lookup with GitHub's 404. The stand-in is an httpx
transport in-process, so nothing but the resolver and its HTTP client allocates while we measure:
traced Python memory (tracemalloc, after a collection) and the process's RSS, at checkpoints.
`python -m bench.resolver_memory [specs]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import time
import tracemalloc

import httpx
import psutil

from binder_actors.actors.ref_resolver import RefResolver
from binder_actors.config import BinderConfig, ProviderSettings
from binder_actors.models import ResolveRequest
from binder_actors.providers import ResolveError, Upstream

SPECS = 100_000
CHECKPOINTS = (0, 1_000, 10_000, 25_000, 50_000, 100_000)
MB = 1024 * 1024


def github_not_found(request: httpx.Request) -> httpx.Response:
    """What api.github.com answers for a repository that does not exist."""
    return httpx.Response(404, json={"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})


def measure() -> dict[str, float]:
    gc.collect()
    return {
        "traced_mb": round(tracemalloc.get_traced_memory()[0] / MB, 2),
        "rss_mb": round(psutil.Process().memory_info().rss / MB, 1),
    }


async def stream_of_misses(specs: int) -> dict[str, object]:
    config = BinderConfig(providers=ProviderSettings(github_api_url="http://github.invalid"), namespace="binder-bench")
    resolver = RefResolver(config)
    await resolver.upstream.aclose()
    resolver.upstream = Upstream(config, http=httpx.AsyncClient(transport=httpx.MockTransport(github_not_found)))
    points = [n for n in CHECKPOINTS if n <= specs]
    memory: dict[int, dict[str, float]] = {}
    caches: dict[int, dict[str, int]] = {}
    started = time.perf_counter()
    for n in range(specs + 1):
        if n in points:
            memory[n], caches[n] = measure(), await resolver.stats()
        if n == specs:
            break
        with contextlib.suppress(ResolveError):
            await resolver.resolve(ResolveRequest(provider="gh", spec=f"nobody/missing-{n}/HEAD"))
    seconds = time.perf_counter() - started
    await resolver.upstream.aclose()
    first, last = memory[points[0]], memory[points[-1]]
    return {
        "specs": specs,
        "seconds": round(seconds, 1),
        "samples": {str(n): {**memory[n], **caches[n]} for n in points},
        "traced_growth_mb": round(last["traced_mb"] - first["traced_mb"], 2),
        "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
    }


def run(specs: int = SPECS) -> dict[str, object]:
    tracemalloc.start()
    try:
        return asyncio.run(stream_of_misses(specs))
    finally:
        tracemalloc.stop()


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else SPECS), indent=2))
