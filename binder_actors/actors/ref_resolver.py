"""RefResolver: spec -> ResolvedRef, with a TTL cache and single flight per spec."""

from __future__ import annotations

import asyncio
import logging
import time

import ray
from pydantic import BaseModel

from binder_actors.config import BinderConfig
from binder_actors.logs import setup_logging
from binder_actors.providers import ResolvedRef, get_provider

log = logging.getLogger(__name__)


class ResolveRequest(BaseModel):
    provider: str
    spec: str


class RefResolver:
    def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self._cache: dict[tuple[str, str], tuple[float, ResolvedRef]] = {}
        self._in_flight: dict[tuple[str, str], asyncio.Future[ResolvedRef]] = {}
        self.upstream_calls = 0

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def resolve(self, request: ResolveRequest) -> ResolvedRef:
        """The commit a spec names now; raises InvalidSpec or ResolveError with a user message."""
        key = (request.provider, request.spec)
        cached = self._cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        if key in self._in_flight:
            return await asyncio.shield(self._in_flight[key])
        future: asyncio.Future[ResolvedRef] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            resolved = await self._resolve_upstream(request)
            self._cache[key] = (time.monotonic() + self.config.ref_cache_ttl, resolved)
            future.set_result(resolved)
            return resolved
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: followers re-raise it, nobody else must
            raise
        finally:
            del self._in_flight[key]

    async def _resolve_upstream(self, request: ResolveRequest) -> ResolvedRef:
        provider = get_provider(request.provider)
        parsed = provider.parse(request.spec, allow_local_repos=self.config.allow_local_repos)
        self.upstream_calls += 1
        resolved = await provider.resolve(
            parsed,
            timeout=self.config.upstream_timeout,
            allow_local_repos=self.config.allow_local_repos,
        )
        log.info("resolved spec=%s ref=%s", request.spec, resolved.resolved_ref)
        return resolved

    async def stats(self) -> dict[str, int]:
        return {"upstream_calls": self.upstream_calls, "cached": len(self._cache)}
