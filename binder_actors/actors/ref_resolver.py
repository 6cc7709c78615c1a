"""RefResolver: spec -> ResolvedRef, with bounded TTL caches for hits and misses and single flight per spec."""

from __future__ import annotations

import logging

import ray

from binder_actors.caching import SingleFlight, TTLCache
from binder_actors.config import BinderConfig
from binder_actors.logs import setup_logging
from binder_actors.models import ResolveRequest, ResolverStats
from binder_actors.policy import refusal
from binder_actors.providers import ResolvedRef, ResolveError, Upstream, parse_spec, resolve_spec

log = logging.getLogger(__name__)

SpecKey = tuple[str, str]  # (provider, spec)


class RefResolver:
    def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.upstream = Upstream(config)
        self._cache: TTLCache[SpecKey, ResolvedRef] = TTLCache(config.ref_cache_size, config.ref_cache_ttl)
        # The message of a miss, not the error: a cached exception re-raised grows its traceback each time.
        self._misses: TTLCache[SpecKey, str] = TTLCache(config.ref_miss_cache_size, config.ref_miss_ttl)
        self._in_flight: SingleFlight[SpecKey, ResolvedRef] = SingleFlight()
        self.upstream_calls = 0
        self.cache_hits = 0  # answers from the cache or from a resolution already in flight

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def resolve(self, request: ResolveRequest) -> ResolvedRef:
        """The version a spec names now; raises InvalidSpec or ResolveError with a user message."""
        refused = refusal(request.spec, self.config, request.provider)
        if refused:
            raise ResolveError(refused, 403)
        key = (request.provider, request.spec)
        cached = self._cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            return cached
        missing = self._misses.get(key)
        if missing is not None:
            raise ResolveError(missing, 404)
        if key in self._in_flight:
            self.cache_hits += 1
        return await self._in_flight.run(key, lambda: self._resolve_and_remember(key, request))

    async def _resolve_and_remember(self, key: SpecKey, request: ResolveRequest) -> ResolvedRef:
        """Runs once per flight, so its answer is cached even when every caller has gone."""
        try:
            resolved = await self._resolve_upstream(request)
        except ResolveError as error:
            if error.status_code == 404:
                self._misses[key] = error.message
            raise
        self._cache[key] = resolved
        self._misses.pop(key, None)
        return resolved

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
