"""RefResolver: cached resolutions per second through the actor, and single flight under 1,000 callers.

A RefResolver actor on a local Ray, its gh provider pointed at the GitHub API stand-in on
127.0.0.1 (tests/upstreams.py). The baseline is the same resolution with no cache, in-process:
one upstream call per request, as a resolver without single flight or TTL makes. The stand-in
answers in about a millisecond; the real GitHub API takes 50-300 ms, so the real ratio is larger.
"""

from __future__ import annotations

import asyncio
import threading
import time

import ray

from binder_actors.actors.ref_resolver import RefResolver
from binder_actors.config import BinderConfig, ProviderSettings
from binder_actors.models import ResolveRequest
from binder_actors.providers import Upstream, parse_spec, resolve_spec
from tests.upstreams import UpstreamServer

CACHED_CALLS = 5000
FAN_IN = 1000
UNCACHED_CALLS = 200


async def _cached_rate(actor, request: ResolveRequest) -> float:
    await actor.resolve.remote(request)  # warm the cache
    started = time.perf_counter()
    await asyncio.gather(*(actor.resolve.remote(request) for _ in range(CACHED_CALLS)))
    return CACHED_CALLS / (time.perf_counter() - started)


async def _uncached_rate(config: BinderConfig) -> float:
    """The baseline: every request goes upstream (one HTTP client kept open, as a resolver would)."""
    upstream = Upstream(config)
    parsed = parse_spec("gh", "org/repo/HEAD", settings=config.providers)
    try:
        started = time.perf_counter()
        for _ in range(UNCACHED_CALLS):
            await resolve_spec(parsed, upstream)
        return UNCACHED_CALLS / (time.perf_counter() - started)
    finally:
        await upstream.aclose()


def run() -> dict[str, object]:
    upstream = UpstreamServer()
    upstream.tables.github_refs = {"org/repo": {"HEAD": "a" * 40}, "org/popular": {"HEAD": "b" * 40}}
    config = BinderConfig(
        providers=ProviderSettings(github_api_url=upstream.url), ref_cache_ttl=3600, namespace="binder-bench"
    )
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=2, namespace="binder-bench", include_dashboard=False, log_to_driver=False)
    try:
        actor = ray.remote(RefResolver).remote(config)
        cached_per_second = asyncio.run(_cached_rate(actor, ResolveRequest(provider="gh", spec="org/repo/HEAD")))

        upstream.tables.github_delay = threading.Event()  # everyone asks while the first call is out
        started = time.perf_counter()
        refs = [actor.resolve.remote(ResolveRequest(provider="gh", spec="org/popular/HEAD")) for _ in range(FAN_IN)]
        deadline = time.monotonic() + 60
        while upstream.count("/repos/org/popular/") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        upstream.tables.github_delay.set()
        ray.get(refs)
        fan_in_seconds = time.perf_counter() - started
        upstream.tables.github_delay = None
        upstream_calls = upstream.count("/repos/org/popular/")

        uncached_per_second = asyncio.run(_uncached_rate(config))
        ray.kill(actor)
    finally:
        upstream.stop()
        if started_here:
            ray.shutdown()
    return {
        "cached_resolutions_per_second": round(cached_per_second),
        "uncached_resolutions_per_second_baseline": round(uncached_per_second),
        "cached_vs_uncached": round(cached_per_second / uncached_per_second, 1),
        "fan_in_callers": FAN_IN,
        "fan_in_upstream_calls": upstream_calls,
        "fan_in_seconds_to_last_answer": round(fan_in_seconds, 2),
    }
