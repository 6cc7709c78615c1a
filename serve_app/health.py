"""/health: the registry, JupyterHub, the session quota and each actor, as BinderHub's checks.

The expensive checks (registry, quota) are cached for HEALTH_CACHE_SECONDS per replica, as BinderHub's
`at_most_every`; the hub and the actors are asked on every call, so an outage shows at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ray.actor import ActorHandle

from binder_actors.actors import ActorHandles
from binder_actors.caching import SingleFlight, TTLCache
from binder_actors.config import BinderConfig
from binder_actors.models import CullerStatus, HubHealth, PoolStatus, RegistryHealth

T = TypeVar("T")

HEALTH_CACHE_SECONDS = 15.0
CALL_TIMEOUT = 5.0
SOFT_CHECKS = {"Session quota"}  # a full Binder is still healthy, as BinderHub's pod quota


class AtMostEvery(Generic[T]):
    """An async computation run at most once per `interval`; concurrent callers share one run."""

    def __init__(
        self, compute: Callable[[], Awaitable[T]], interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.compute = compute
        self._result: TTLCache[None, T] = TTLCache(maxsize=1, ttl=interval, timer=clock)
        self._running: SingleFlight[None, T] = SingleFlight()

    async def __call__(self) -> T:
        try:
            return self._result[None]
        except KeyError:
            return await self._running.run(None, self._compute_and_keep)

    async def _compute_and_keep(self) -> T:
        result = await self.compute()  # a failure is not kept: the next call tries again
        self._result[None] = result
        return result


async def ask(call: Awaitable[T], timeout: float = CALL_TIMEOUT) -> T | str:
    """An actor call's answer, or an `Error` string saying why there is none."""
    try:
        return await asyncio.wait_for(call, timeout)
    except Exception as error:  # a health check reports failures, it does not raise them
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def answer_check(service: str, answer: RegistryHealth | HubHealth | str) -> dict[str, Any]:
    """A check from an actor's health answer (BinderHub's check shape), or a failed one from an error string."""
    if isinstance(answer, str):
        return {"service": service, "ok": False, "error": answer}
    return {"service": service, **answer.model_dump(mode="json")}


class HealthChecks:
    """The checks of one replica, with its cache of the expensive ones."""

    def __init__(
        self, handles: ActorHandles, config: BinderConfig, cache_seconds: float = HEALTH_CACHE_SECONDS
    ) -> None:
        self.handles = handles
        self.config = config
        self.registry = AtMostEvery(self._registry, cache_seconds)
        self.quota = AtMostEvery(self._quota, cache_seconds)

    async def _registry(self) -> dict[str, Any]:
        return answer_check("Registry", await ask(self.handles.image_cache.health.remote()))

    async def _quota(self) -> dict[str, Any]:
        sessions = await ask(self.handles.session_manager.session_count.remote())
        if isinstance(sessions, str):
            return {"service": "Session quota", "ok": False, "error": sessions}
        quota = self.config.quotas.max_sessions
        return {"service": "Session quota", "ok": sessions <= quota, "sessions": sessions, "quota": quota}

    async def _actor(self, name: str, handle: ActorHandle) -> dict[str, Any]:
        started = time.monotonic()
        answer = await ask(handle.__ray_ready__.remote())
        check = {
            "service": name,
            "ok": not isinstance(answer, str),
            "latency_ms": round((time.monotonic() - started) * 1000, 2),
        }
        if isinstance(answer, str):
            check["error"] = answer
        return check

    async def hub_version(self) -> str | None:
        answer = await ask(self.handles.session_manager.health.remote())
        return answer.version if isinstance(answer, HubHealth) else None

    async def report(self) -> dict[str, Any]:
        """`{"ok": ..., "checks": [...], "culler": ..., "pool": ...}`; ok is False when any hard check failed."""
        hub = ask(self.handles.session_manager.health.remote())
        actors = [self._actor(name, handle) for name, handle in self.handles.named()]
        registry, hub_answer, quota, culler, pool, *actor_checks = await asyncio.gather(
            self.registry(),
            hub,
            self.quota(),
            ask(self.handles.activity_monitor.status.remote()),
            ask(self.handles.server_pool.status.remote()),
            *actors,
        )
        checks = [registry, answer_check("JupyterHub", hub_answer), quota, *actor_checks]
        ok = all(check["ok"] for check in checks if check["service"] not in SOFT_CHECKS)
        culler_json = culler.model_dump(mode="json") if isinstance(culler, CullerStatus) else None
        pool_json = pool.model_dump(mode="json") if isinstance(pool, PoolStatus) else None
        return {"ok": ok, "checks": checks, "culler": culler_json, "pool": pool_json}
