"""ActivityMonitor: the culler. Reads last activity from JupyterHub and removes idle sessions.

The work is the plain `cull_idle` function (as jupyterhub-idle-culler does it); the actor only
runs it every BINDER_CULL_EVERY seconds and keeps the last sweep's result.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from binder_actors.config import BinderConfig
from binder_actors.hub import HubClient, HubError
from binder_actors.logs import setup_logging
from binder_actors.models import CullerStatus, CullReport

log = logging.getLogger(__name__)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def idle_seconds(server: dict[str, Any], now: datetime) -> float | None:
    """Seconds since the server's last activity (or start); None while it is pending."""
    if server.get("pending") or not server.get("ready"):
        return None
    last = _parse_time(server.get("last_activity")) or _parse_time(server.get("started"))
    return None if last is None else (now - last).total_seconds()


async def cull_idle(
    hub: HubClient,
    *,
    timeout: float,
    concurrency: int,
    max_age: float = 0,
    dry_run: bool = False,
    now: datetime | None = None,
) -> CullReport:
    """Remove every user whose servers are all idle longer than `timeout` seconds, or all older
    than `max_age` seconds when it is set (jupyterhub-idle-culler's --timeout, --max-age, --cull-users).

    Pending spawns are left alone; users without any server are temporary leftovers and removed
    once they are older than `timeout`. At most `concurrency` users are culled at once.
    With `dry_run`, the report names who would be culled and nothing is done.
    """
    now = now or datetime.now(timezone.utc)
    users = await hub.list_users()
    report = CullReport(checked=len(users))
    slots = asyncio.Semaphore(concurrency)

    def too_old(server: dict[str, Any]) -> bool:
        started = _parse_time(server.get("started"))
        return bool(max_age) and started is not None and (now - started).total_seconds() > max_age

    def should_cull(user: dict[str, Any]) -> bool:
        servers = (user.get("servers") or {}).values()
        if any(s.get("pending") for s in servers):
            return False
        if not servers:
            created = _parse_time(user.get("created"))
            return created is not None and (now - created).total_seconds() > timeout
        idles = [idle_seconds(s, now) for s in servers]
        return all(i is not None and i > timeout for i in idles) or all(too_old(s) for s in servers)

    async def cull(user: dict[str, Any]) -> None:
        if dry_run:
            report.culled.append(user["name"])
            return
        async with slots:
            try:
                for server_name in user.get("servers") or {}:
                    await hub.stop_server(user["name"], server_name)
                await hub.delete_user(user["name"])
                report.culled.append(user["name"])
                log.info("culled user=%s", user["name"])
            except HubError as error:
                report.errors += 1
                log.warning("cull failed user=%s: %s", user["name"], error)

    await asyncio.gather(*(cull(u) for u in users if not u.get("admin") and should_cull(u)))
    report.finished = datetime.now(timezone.utc)
    return report


class ActivityMonitor:
    async def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.hub = HubClient(config.hub_url, config.hub_api_token.get_secret_value())
        self.last_report = CullReport()
        self.culled_total = 0
        self._sweeps = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.cull_every)
            try:
                await self.cull_once()
            except HubError as error:
                log.warning("cull sweep skipped: %s", error)

    async def cull_once(
        self, timeout: float | None = None, max_age: float | None = None, dry_run: bool = False
    ) -> CullReport:
        """Run one sweep now; the arguments override BINDER_CULL_TIMEOUT and BINDER_CULL_MAX_AGE once.
        With `dry_run`, report who would be culled and touch nothing."""
        report = await cull_idle(
            self.hub,
            timeout=self.config.cull_timeout if timeout is None else timeout,
            max_age=self.config.cull_max_age if max_age is None else max_age,
            concurrency=self.config.cull_concurrency,
            dry_run=dry_run,
        )
        if dry_run:
            return report
        self.last_report = report
        self.culled_total += len(report.culled)
        return report

    async def status(self) -> CullerStatus:
        return CullerStatus(culled_total=self.culled_total, last_sweep=self.last_report)
