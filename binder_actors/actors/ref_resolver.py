"""RefResolver: spec -> ResolvedRef, with TTL caches for hits and misses and single flight per spec."""

from __future__ import annotations

import asyncio
import logging
import time

import ray

from binder_actors.config import BinderConfig
from binder_actors.logs import setup_logging
from binder_actors.models import ResolveRequest, ResolverStats
from binder_actors.policy import refusal
from binder_actors.providers import ResolvedRef, ResolveError, Upstream, parse_spec, resolve_spec

log = logging.getLogger(__name__)


class RefResolver:
    def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.upstream = Upstream(config)
        self._cache: dict[tuple[str, str], tuple[float, ResolvedRef]] = {}
        self._misses: dict[tuple[str, str], tuple[float, ResolveError]] = {}
        self._in_flight: dict[tuple[str, str], asyncio.Future[ResolvedRef]] = {}
        self.upstream_calls = 0
        self.cache_hits = 0  # answers from the cache or from a resolution already in flight

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def resolve(self, request: ResolveRequest) -> ResolvedRef:
        """The version a spec names now; raises InvalidSpec or ResolveError with a user message."""
        refused = refusal(request.spec, self.config)
        if refused:
            raise ResolveError(refused, 403)
        key = (request.provider, request.spec)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and cached[0] > now:
            self.cache_hits += 1
            return cached[1]
        miss = self._misses.get(key)
        if miss and miss[0] > now:
            raise miss[1]
        if key in self._in_flight:
            self.cache_hits += 1
            return await asyncio.shield(self._in_flight[key])
        future: asyncio.Future[ResolvedRef] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            resolved = await self._resolve_upstream(request)
            self._cache[key] = (time.monotonic() + self.config.ref_cache_ttl, resolved)
            self._misses.pop(key, None)
            future.set_result(resolved)
            return resolved
        except BaseException as error:
            if isinstance(error, ResolveError) and error.status_code == 404:
                self._misses[key] = (time.monotonic() + self.config.ref_miss_ttl, error)
            future.set_exception(error)
            future.exception()  # retrieved: followers re-raise it, nobody else must
            raise
        finally:
            del self._in_flight[key]

    async def _resolve_upstream(self, request: ResolveRequest) -> ResolvedRef:
        parsed = parse_spec(
            request.provider,
            request.spec,
            settings=self.config.providers,
            allow_local_repos=self.config.allow_local_repos,
        )
        self.upstream_calls += 1
        resolved = await resolve_spec(parsed, self.upstream)
        log.info("resolved provider=%s spec=%s ref=%s", request.provider, request.spec, resolved.resolved_ref)
        return resolved

    async def stats(self) -> ResolverStats:
        return ResolverStats(
            upstream_calls=self.upstream_calls,
            cache_hits=self.cache_hits,
            upstream_requests=self.upstream.requests,
            cached=len(self._cache),
            cached_misses=len(self._misses),
        )
