"""ActivityMonitor: the culler. Reads last activity from JupyterHub and removes idle sessions.

The decision is the pure `cull_verdict`, the work the plain `cull_idle` function (as
jupyterhub-idle-culler does it); the actor only runs it every BINDER_CULL_EVERY seconds and keeps
the last sweep's result.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from binder_actors.config import BinderConfig
from binder_actors.hub import HubClient, HubError, HubStillStopping
from binder_actors.hub_models import HubServer, HubUser
from binder_actors.logs import setup_logging
from binder_actors.models import CullerStatus, CullReport
from binder_actors.owned_sessions import owned_servers, session_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """Whether to cull one hub user, and why (or why not)."""

    cull: bool
    reason: str


def _seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else (now - moment).total_seconds()


def idle_seconds(server: HubServer, now: datetime) -> float | None:
    """Seconds since the server's last activity (or its start if it has none); None unless it is ready."""
    if server.pending or not server.ready:
        return None
    return _seconds_since(server.last_activity or server.started, now)


def cull_verdict(user: HubUser, now: datetime, *, timeout: float, max_age: float = 0) -> Verdict:
    """Cull a user whose servers are all idle longer than `timeout` seconds, or all older than
    `max_age` seconds when it is set (jupyterhub-idle-culler's --timeout, --max-age, --cull-users).

    Users binder-actors did not create, admin users and pending spawns or stops are left alone; a
    user without any server is a temporary leftover, culled once created longer than `timeout` seconds ago.
    """
    if not user.managed:
        return Verdict(False, "not created by binder-actors")
    if user.admin:
        return Verdict(False, "admin user")
    if user.waiting_in_pool:  # not a session until a launch claims it; ServerPool drains its own
        return Verdict(False, "pooled, not claimed yet")
    for name, server in user.servers.items():
        if server.pending:
            return Verdict(False, f"server {name!r} is pending {server.pending}")
    if not user.servers:
        created = _seconds_since(user.created, now)
        if created is None:
            return Verdict(False, "no server and no creation time")
        return Verdict(created > timeout, f"no server, created {created:.0f}s ago (timeout {timeout:g}s)")
    idles = {name: idle_seconds(server, now) for name, server in user.servers.items()}
    if all(idle is not None and idle > timeout for idle in idles.values()):
        return Verdict(True, f"idle for {min(idles.values()):.0f}s (timeout {timeout:g}s)")
    ages = [_seconds_since(server.started, now) for server in user.servers.values()]
    if max_age and all(age is not None and age > max_age for age in ages):
        return Verdict(True, f"running for {min(ages):.0f}s (max age {max_age:g}s)")
    name, idle = next((name, idle) for name, idle in idles.items() if idle is None or idle <= timeout)
    if idle is None:
        why = "is not ready" if not user.servers[name].ready else "has no activity or start time"
        return Verdict(False, f"server {name!r} {why}")
    return Verdict(False, f"server {name!r} active {idle:.0f}s ago (timeout {timeout:g}s)")


def server_verdict(server: HubServer, now: datetime, *, timeout: float, max_age: float = 0) -> Verdict:
    """Cull one Binder server of a logged-in user (authenticated mode) idle longer than `timeout`
    seconds, or older than `max_age` when it is set; the user is theirs, and is never culled."""
    if server.pending:
        return Verdict(False, f"pending {server.pending}")
    idle = idle_seconds(server, now)
    if idle is None:
        return Verdict(False, "not ready" if not server.ready else "no activity or start time")
    if idle > timeout:
        return Verdict(True, f"idle for {idle:.0f}s (timeout {timeout:g}s)")
    age = _seconds_since(server.started, now)
    if max_age and age is not None and age > max_age:
        return Verdict(True, f"running for {age:.0f}s (max age {max_age:g}s)")
    return Verdict(False, f"active {idle:.0f}s ago (timeout {timeout:g}s)")


def doomed_servers(
    users: list[HubUser], now: datetime, *, launch_host: str, timeout: float, max_age: float = 0
) -> list[tuple[str, str, str]]:
    """(user, server, reason) of the logged-in users' Binder servers `server_verdict` culls."""
    doomed = []
    for user in users:
        owned = owned_servers(user, launch_host)
        for name, server in (owned.servers if owned else {}).items():
            verdict = server_verdict(server, now, timeout=timeout, max_age=max_age)
            if verdict.cull:
                doomed.append((user.name, name, verdict.reason))
            else:
                log.debug("not culling user=%s server=%s: %s", user.name, name, verdict.reason)
    return doomed


async def cull_idle(
    hub: HubClient,
    *,
    timeout: float,
    concurrency: int,
    max_age: float = 0,
    dry_run: bool = False,
    now: datetime | None = None,
    logged_in: bool = False,
    launch_host: str = "",
) -> CullReport:
    """Remove every user `cull_verdict` culls (its servers stopped, then the user deleted),
    at most `concurrency` at once. With `dry_run`, the report names who would be culled and
    nothing is done. The reasons not to cull a user are logged at debug, as jupyterhub-idle-culler does.

    With `logged_in` (authenticated mode), the Binder servers this deployment (`launch_host`) started for
    logged-in users are culled too, each on its own: stopped and removed, the user kept. The report
    names them `user/server`.
    """
    now = now or datetime.now(timezone.utc)
    # Only a user without activity for `timeout` can be idle that long: the hub's list sorted by
    # activity is read up to the first one active since (a sweep reads the idle, not every session).
    # A max age culls the active too, and a logged-in user active elsewhere (another server, the hub's
    # pages) may still have an idle Binder server: those read them all.
    whole = max_age or logged_in
    users = await hub.list_users() if whole else await hub.idle_since(now - timedelta(seconds=timeout))
    report = CullReport(checked=len(users))
    doomed: list[tuple[str, str]] = []
    for user in users:
        verdict = cull_verdict(user, now, timeout=timeout, max_age=max_age)
        if verdict.cull:
            doomed.append((user.name, verdict.reason))
        else:
            log.debug("not culling user=%s: %s", user.name, verdict.reason)
    servers = doomed_servers(users, now, launch_host=launch_host, timeout=timeout, max_age=max_age) if logged_in else []
    if dry_run:
        report.culled = [name for name, _ in doomed] + [session_key(user, name) for user, name, _ in servers]
        report.finished = datetime.now(timezone.utc)
        return report
    slots = asyncio.Semaphore(concurrency)

    async def cull(name: str, reason: str) -> None:
        async with slots:
            try:
                await hub.remove_user(name)
            except HubStillStopping as error:  # as idle-culler does with a 202: the next sweep deletes it
                log.info("not deleting user=%s yet: %s", name, error)
            except HubError as error:
                report.errors += 1
                log.warning("cull failed user=%s: %s", name, error)
            else:
                report.culled.append(name)
                log.info("culled user=%s: %s", name, reason)

    async def cull_server(user: str, server: str, reason: str) -> None:
        async with slots:
            try:
                await hub.remove_server(user, server)
            except HubError as error:
                report.errors += 1
                log.warning("cull failed user=%s server=%s: %s", user, server, error)
            else:
                report.culled.append(session_key(user, server))
                log.info("culled user=%s server=%s: %s", user, server, reason)

    await asyncio.gather(
        *(cull(name, reason) for name, reason in doomed), *(cull_server(*doomed) for doomed in servers)
    )
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
            await asyncio.sleep(self.config.culling.every)
            try:
                await self.cull_once()
            except HubError as error:
                log.warning("cull sweep skipped: %s", error)
            except Exception:  # a sweep that crashed must not end the sweeps that follow
                log.exception("cull sweep failed")

    async def cull_once(
        self, timeout: float | None = None, max_age: float | None = None, dry_run: bool = False
    ) -> CullReport:
        """Run one sweep now; the arguments override BINDER_CULL_TIMEOUT and BINDER_CULL_MAX_AGE once.
        With `dry_run`, report who would be culled and touch nothing."""
        report = await cull_idle(
            self.hub,
            timeout=self.config.culling.timeout if timeout is None else timeout,
            max_age=self.config.culling.max_age if max_age is None else max_age,
            concurrency=self.config.culling.concurrency,
            dry_run=dry_run,
            logged_in=self.config.auth.enabled,
            launch_host=self.config.launch_host,
        )
        if dry_run:
            return report
        self.last_report = report
        self.culled_total += len(report.culled)
        return report

    async def status(self) -> CullerStatus:
        return CullerStatus(culled_total=self.culled_total, last_sweep=self.last_report)
