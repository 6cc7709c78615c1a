"""ServerPool: servers started ahead of the clicks, handed to launches of their image at claim time.

What to keep is the pure core in pool.py; this actor learns the launches (SessionManager's claims), refills
and drains in the background, and keeps its state in JupyterHub (hub_records.py): pooled users are in the
deployment's pool group, a claimed one also in its launch's claim group, so a restarted actor finds both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Literal

import ray

from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.hub import HubClient, HubError
from binder_actors.hub_models import CLAIM_GROUP_PREFIX, HubUser
from binder_actors.hub_records import (
    claim_group,
    claim_key_of,
    create_claim,
    delete_group,
    groups_named,
    join_group,
    launch_options,
    pool_group,
    report_activity,
    template_of,
)
from binder_actors.logs import setup_logging
from binder_actors.models import LaunchRequest, PoolStatus
from binder_actors.names import server_name_for_launch, user_name_for_repo
from binder_actors.pool import LaunchWindow, PoolCounts, PoolRule, plan_pool, pool_targets, static_size

log = logging.getLogger(__name__)

REFILL_EVERY_SECONDS = 5.0  # a pass at least this often; claims and misses wake it at once
SYNC_EVERY_SECONDS = 15.0  # how often the hub is read again (servers that stopped on their own, real sessions)
TEMPLATES_MAX = 1000  # specs remembered as what to start servers of; the least recently launched go first


@dataclass
class PooledServer:
    user: str
    image: str
    server_name: str
    state: Literal["starting", "free", "draining"]


class ServerPool:
    async def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.enabled = config.pool.enabled
        self.hub = HubClient(config.hub_url, config.hub_api_token.get_secret_value())
        self.group = pool_group(config.namespace)
        self.rules = [PoolRule(rule.pattern, rule.size) for rule in config.pool.rules]
        self.window = LaunchWindow(config.pool.window)
        self._servers: dict[str, PooledServer] = {}  # user -> its unclaimed pooled server
        self._claims: dict[str, str] = {}  # claim key -> user, of the claimed servers the hub still has
        self._claiming: set[str] = set()  # users taken by a claim not yet recorded in the hub
        self._templates: OrderedDict[str, LaunchRequest] = OrderedDict()  # provider/spec -> its latest launch
        self._real_sessions = 0
        self._targets: dict[str, int] = {}
        self.hits = self.misses = 0
        self.claim_seconds = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._synced = float("-inf")
        if self.enabled:
            try:
                await self._sync()
            except HubError as error:
                log.warning("could not read the pool from the hub at start: %s", error)
            self._refills = asyncio.get_running_loop().create_task(self._refill_forever())

    @ray.method(max_task_retries=-1)  # idempotent per launch: retried across actor restarts
    async def claim(self, request: LaunchRequest, sessions: int = 0) -> BinderEvent | None:
        """The ready event of a pooled server of `request.image`, now this launch's; None if none is free.

        `sessions`: the real sessions admission counts (the pool keeps to the room they leave).
        Idempotent per launch: the same launch (its key) asking again gets the server it claimed.
        """
        started = time.monotonic()
        if not self.enabled:
            return None
        self._real_sessions = sessions
        key = claim_key_of(request)
        if key in self._claims:
            return await self._hand_over(self._claims[key], request)
        self._remember(request)
        server = next((s for s in self._servers.values() if s.image == request.image and s.state == "free"), None)
        if server is None:
            self.misses += 1
            self._wake.set()
            return None
        del self._servers[server.user]  # before any await: no other claim can take it
        self._claiming.add(server.user)
        try:
            holder = await create_claim(self.hub, claim_group(key), server.user)
        except HubError as error:  # the claim may be recorded or not: the server is never handed out again
            log.warning("claim not recorded user=%s, removing it: %s", server.user, error)
            server.state = "draining"  # kept until removed, so a sync meanwhile cannot adopt it as free
            self._servers[server.user] = server
            self._in_background(self._remove(server.user))
            self.misses += 1
            return None
        finally:
            self._claiming.discard(server.user)
        if holder != server.user:  # this launch had claimed another one, before this actor restarted
            self._servers[server.user] = server
        self._claims[key] = holder
        self._wake.set()
        ready = await self._hand_over(holder, request)
        if ready is not None:
            self.hits += 1
            self.claim_seconds += time.monotonic() - started
            log.info("pooled server claimed user=%s image=%s", holder, request.image)
        return ready

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def claimed(self, request: LaunchRequest) -> BinderEvent | None:
        """The ready event of the server this launch claimed before (a reconnect), None if it claimed none."""
        user = self._claims.get(request.launch_key) if request.launch_key else None
        return None if user is None else await self._hand_over(user, request)

    async def _hand_over(self, user: str, request: LaunchRequest) -> BinderEvent | None:
        """A fresh token for `user`'s server and the launch's ready event; None if the server is gone."""
        model = await self.hub.get_user(user)
        server_name, server = next(iter(model.servers.items()), ("", None)) if model else ("", None)
        if server is None or not server.ready:
            return None
        token = await self.hub.create_token(user, note="binder session", scopes=[f"access:servers!user={user}"])
        await report_activity(self.hub, user, server_name)
        options = launch_options(request, token=token, launch_host=self.config.launch_host)
        return options.ready_event(self.hub.hub_url.rstrip("/") + server.url)

    def _remember(self, request: LaunchRequest) -> None:
        self.window.record(request.image)
        spec = f"{request.resolved.provider}/{request.resolved.spec}"
        self._templates[spec] = request.model_copy(update={"user": "", "launch_key": ""})
        self._templates.move_to_end(spec)
        while len(self._templates) > TEMPLATES_MAX:
            self._templates.popitem(last=False)

    async def status(self) -> PoolStatus:
        free: dict[str, int] = {}
        starting: dict[str, int] = {}
        for server in self._servers.values():
            counts = free if server.state == "free" else starting if server.state == "starting" else None
            if counts is not None:
                counts[server.image] = counts.get(server.image, 0) + 1
        return PoolStatus(
            enabled=self.enabled,
            free=free,
            starting=starting,
            targets=self._targets,
            hits=self.hits,
            misses=self.misses,
            claim_seconds_total=self.claim_seconds,
        )

    async def refill_now(self) -> PoolStatus:
        """Read the hub again and run one refill pass now (the CLI and tests; the loop does it anyway)."""
        if self.enabled:
            await self._sync()
            self._refill_once()
        return await self.status()

    async def _refill_forever(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):  # a pass every REFILL_EVERY_SECONDS anyway
                await asyncio.wait_for(self._wake.wait(), REFILL_EVERY_SECONDS)
            self._wake.clear()
            try:
                if time.monotonic() - self._synced > SYNC_EVERY_SECONDS:
                    await self._sync()
                self._refill_once()
            except HubError as error:
                log.warning("pool refill skipped: %s", error)
            except Exception:  # a pass that crashed must not end the passes that follow
                log.exception("pool refill failed")

    def _refill_once(self) -> None:
        latest: dict[str, LaunchRequest] = {request.image: request for request in self._templates.values()}
        static: dict[str, int] = {}
        for request in self._templates.values():
            size = static_size(self.rules, request.resolved.spec)
            if size:
                static[request.image] = max(static.get(request.image, 0), size)
        # Only the latest image of each spec is pooled: a new commit's image replaces the old one's servers.
        launches = {image: count for image, count in self.window.counts().items() if image in latest}
        current: dict[str, PoolCounts] = {}
        for server in self._servers.values():
            counts = current.get(server.image, PoolCounts())
            if server.state == "free":
                current[server.image] = PoolCounts(counts.free + 1, counts.starting)
            elif server.state == "starting":
                current[server.image] = PoolCounts(counts.free, counts.starting + 1)
        room = self.config.quotas.max_sessions - self._real_sessions
        self._targets = pool_targets(static, launches, self.config.pool.max, room)
        starting = sum(counts.starting for counts in current.values())
        plan = plan_pool(self._targets, current, self.config.quotas.max_concurrent_spawns - starting)
        for image, count in plan.drain.items():
            doomed = [s for s in self._servers.values() if s.image == image and s.state == "free"][:count]
            for server in doomed:
                server.state = "draining"
                log.info("draining pooled server user=%s image=%s", server.user, image)
                self._in_background(self._remove(server.user))
        for image, count in plan.start.items():
            for _ in range(count):
                self._in_background(self._start(latest[image]))

    async def _start(self, template: LaunchRequest) -> None:
        user = user_name_for_repo(template.resolved.repo_url)
        server_name = server_name_for_launch() if self.config.named_servers else ""
        self._servers[user] = PooledServer(user, template.image, server_name, "starting")
        try:
            await self.hub.create_user(user)
            await join_group(self.hub, self.group, user)
            token = await self.hub.create_token(
                user, note="binder pooled server", scopes=[f"access:servers!user={user}"]
            )
            options = launch_options(template, token=token, launch_host=self.config.launch_host, pool=self.group)
            await asyncio.wait_for(self._spawn(user, server_name, options.model_dump()), self.config.launch_timeout)
        except (HubError, asyncio.TimeoutError) as error:
            log.warning("pooled server did not start user=%s image=%s: %s", user, template.image, error)
            failed = self._servers.get(user)
            if failed is not None:
                failed.state = "draining"  # kept until removed, so a sync meanwhile cannot adopt it as free
            await self._remove(user)
            return
        server = self._servers.get(user)
        if server is not None and server.state == "starting":
            server.state = "free"
            log.info("pooled server ready user=%s image=%s", user, template.image)

    async def _spawn(self, user: str, server_name: str, user_options: dict[str, str]) -> None:
        await self.hub.start_server(user, server_name, user_options)
        async for event in self.hub.progress(user, server_name):
            if event.failed:
                raise HubError(event.message or "the server failed to start", 500)
            if event.ready:
                return
        model = await self.hub.get_user(user)
        if model is None or not any(s.ready for s in model.servers.values()):
            raise HubError("the server stopped while it was starting", 500)

    async def _remove(self, user: str) -> None:
        try:
            await self.hub.remove_user(user, made_here=True)
        except HubError as error:  # the next sync finds it again and tries once more
            log.warning("could not remove pooled user=%s: %s", user, error)
        self._servers.pop(user, None)

    async def _sync(self) -> None:
        """Read the pool again from the hub: claims, servers that stopped on their own, the real sessions."""
        users = await self.hub.managed_users()
        claims = await groups_named(self.hub, CLAIM_GROUP_PREFIX)
        self._synced = time.monotonic()
        mine = {user.name: user for user in users if self.group in user.groups}
        self._real_sessions = sum(1 for user in users if user.servers and not user.waiting_in_pool)
        # Claims made while the hub was being read are in memory only so far: they stay.
        known = {user.name for user in users} | self._claiming
        fresh = {key: user for key, user in self._claims.items() if user in known}
        for group, holders in claims.items():
            if not holders:  # its session ended: the record of the claim goes too
                self._in_background(delete_group(self.hub, group))
            elif holders[0] in mine:
                fresh[group.removeprefix(CLAIM_GROUP_PREFIX)] = holders[0]
        self._claims = fresh
        claimed = set(self._claims.values()) | self._claiming
        for name, server in list(self._servers.items()):
            if name not in mine and server.state != "starting":
                del self._servers[name]
        for name, user in mine.items():
            if name in claimed:
                self._servers.pop(name, None)
            elif name not in self._servers:
                self._adopt(user)

    def _adopt(self, user: HubUser) -> None:
        """A pooled user this actor did not start (a previous life of it did): kept if its server runs."""
        server_name, server = next(iter(user.servers.items()), ("", None))
        if server is not None and server.ready and not server.pending and server.user_options.image:
            self._servers[user.name] = PooledServer(user.name, server.user_options.image, server_name, "free")
            template = template_of(server.user_options)
            if template is not None:
                spec = f"{template.resolved.provider}/{template.resolved.spec}"
                self._templates.setdefault(spec, template)  # a launch since is newer: it stays
        elif server is None or server.pending != "spawn":  # stopped on its own, or half-made: never reused
            self._servers[user.name] = PooledServer(user.name, "", server_name, "draining")
            self._in_background(self._remove(user.name))

    def _in_background(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
