"""SessionManager: launches sessions through JupyterHub's REST API and lists them from the hub.

JupyterHub is the source of truth: a session is a hub user with a server, and its Binder fields
live in the server's user_options. Nothing here survives a restart that the hub does not hold.
Quota admission is the pure core in admission.py; this actor holds its lock and asks the hub.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray.actor import ActorHandle

from binder_actors.admission import Admission, Refusal, Step
from binder_actors.backlog import Backlog
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent, failed, progress
from binder_actors.hub import HubClient, HubError, HubUnavailable
from binder_actors.hub_models import HubUser
from binder_actors.hub_records import claim_key_of, hub_user_of, launch_options
from binder_actors.image_budget import launch_records
from binder_actors.launch_cleanup import FailedLaunchCleanup
from binder_actors.logs import setup_logging
from binder_actors.models import HubHealth, LaunchRequest, Session
from binder_actors.names import server_name_for_launch, user_name_for_repo
from binder_actors.owned_sessions import (
    binder_users,
    named_server_limit_message,
    owned_servers,
    server_scope,
    session_key,
)
from binder_actors.policy import repo_quota

log = logging.getLogger(__name__)

NOT_YOURS = "This launch id belongs to another launch: start a new launch (reload the page)."
STILL_STOPPING = "Could not start a session: its last attempt is still stopping. Try again in a moment."


class QuotaExceeded(Exception):
    """Admission refused the launch."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _same_launch(known: str, asked: str) -> bool:
    """Whether a request may re-attach: it carries the launch's key (a launch without one is nobody's)."""
    return bool(known) and hmac.compare_digest(known, asked)


def _run_key(request: LaunchRequest) -> str:
    """What a launch is known by while it runs: its temporary user, or a logged-in user's server."""
    return session_key(request.user, request.server) if request.owner else request.user


def _could_not_start(error: HubError) -> str:
    return f"Could not start a session: {str(error).rstrip('.')}. Try again in a moment."


class SessionManager:
    async def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.hub = HubClient(config.hub_url, config.hub_api_token.get_secret_value())
        self._admission_lock = asyncio.Lock()
        self.admission = Admission(
            config.quotas.max_sessions, lambda spec, provider: repo_quota(spec, config, provider)
        )
        self._spawn_slots = asyncio.Semaphore(max(1, config.quotas.max_concurrent_spawns))
        self._runs: dict[str, tuple[str, Backlog[BinderEvent]]] = {}  # user -> (launch key, launch), while it runs
        self._cleanup = FailedLaunchCleanup(
            self.hub, lambda user, server: (session_key(user, server) if server else user) in self._runs
        )
        self.launches = 0
        self._pool: ActorHandle[Any] | None = None  # ServerPool, looked up at the first launch that asks it
        self._launch_records = launch_records(config)  # when each image was last launched, for the store's budget
        self.reconciled = await self._remove_orphans()

    async def _remove_orphans(self) -> list[str]:
        """Remove the users of launches that were in flight when a previous SessionManager died.

        No launch outlives its SessionManager: whoever asked got a `failed` event saying to retry.
        So at start, a temporary user without a running server, or whose spawn is still pending,
        belongs to nobody and nothing else would remove it soon (the culler waits for idleness).
        """
        try:
            await self.hub.ensure_managed_group()
            users = await self.hub.managed_users()
        except HubError as error:
            log.warning("could not look for orphaned sessions at start: %s", error)
            return []
        orphans = [
            user.name
            for user in users
            if not user.admin
            and not user.pooled  # ServerPool's: it finds its own again
            and (not user.servers or any(s.pending for s in user.servers.values()))
        ]
        for name in orphans:
            log.info("removing an orphaned launch user=%s", name)
            try:
                await self.hub.remove_user(name)
            except HubError as error:
                log.warning("could not remove orphaned user=%s: %s", name, error)
        return orphans

    async def launch(self, request: LaunchRequest) -> AsyncIterator[BinderEvent]:
        """Start a server for `request.image`; launching events, then ready or failed.

        Idempotent per `request.user`: asking again for a user being launched follows that launch
        (no second server), and asking for a user whose server is ready gets its ready event again.
        A launch runs as a task of its own, so it ends the same whoever stops listening.
        """
        if not request.user:
            request = request.model_copy(update={"user": user_name_for_repo(request.resolved.repo_url)})
        if request.owner and (request.user != request.owner or not request.server):
            yield failed("A logged-in user's launch names that user and one of their servers.", 400)
            return
        key = _run_key(request)
        known = self._runs.get(key)
        if known is None:
            run: Backlog[BinderEvent] = Backlog(self._launch(request))
            self._runs[key] = (request.launch_key, run)
        elif _same_launch(known[0], request.launch_key):
            run = known[1]
        else:
            yield failed(NOT_YOURS, 409)
            return
        async for _, event in run.follow():
            yield event

    async def _launch(self, request: LaunchRequest) -> AsyncIterator[BinderEvent]:
        try:
            async for event in self._admit_and_spawn(request):
                yield event
        except Exception:
            log.exception("launch crashed user=%s", request.user)
            yield failed("The launch stopped on an internal error; please retry.", 500)
        finally:
            self._runs.pop(_run_key(request), None)

    async def _admit_and_spawn(self, request: LaunchRequest) -> AsyncIterator[BinderEvent]:
        user, key = request.user, _run_key(request)
        if self.config.pool.enabled and request.launch_key and not request.owner:
            reattached = await self._from_pool("claimed", request)  # a reconnect of a launch a pool served
            if reattached is not None:
                yield reattached
                return
        try:
            existing = await self._admit(request)
            if existing is not None:
                if existing.servers and not _same_launch(existing.launch_key, request.launch_key):
                    yield failed(NOT_YOURS, 409)
                    return
                ready = existing.ready_event(self.hub.hub_url)
                if ready is not None:  # asked again for a session already delivered
                    yield ready
                    return
                await self._discard(request)  # half-made by this launch before its manager died: start over
                if await self._admit(request) is not None:
                    yield failed(STILL_STOPPING, 503)
                    return
        except QuotaExceeded as error:
            yield failed(error.refusal.message, 429)
            return
        except HubError as error:
            yield failed(_could_not_start(error), error.status_code)
            return
        if self._launch_records is not None:
            # Before the spawn, so that a budget pass meanwhile sees the image as just used.
            await asyncio.to_thread(self._launch_records.record, request.image)
        delivered = handed = False  # the place is taken from here: admission counts it until release()
        try:
            full = await self._named_server_limit_reached(request) if request.owner else ""
            if full:
                yield failed(full, 409)
                return
            if self.config.pool.enabled and not request.owner:  # a pooled server is a temporary user's
                pooled = await self._from_pool("claim", request)
                if pooled is not None:
                    self.admission.handed_over(key, hub_user_of(pooled.url or ""))
                    handed = True
                    self.launches += 1
                    yield pooled
                    return
            if self._spawn_slots.locked():
                yield progress("launching", "Waiting for other servers to start...")
            # At most BINDER_MAX_CONCURRENT_SPAWNS at once: a hub asked for a hundred spawns at the
            # same moment stops answering in time, and they all start sooner one slot at a time.
            async with self._spawn_slots:
                try:
                    if not request.owner:  # a logged-in user exists already, and stays
                        await self.hub.create_user(user)
                except HubError as error:
                    if error.status_code != 409:  # not a session already: whatever was made of it goes
                        await self._discard(request)
                    yield failed(_could_not_start(error), error.status_code)
                    return
                async for event in self._spawn(user, request):
                    delivered = event.phase == "ready"
                    yield event
        finally:
            if not handed:
                self.admission.release(key, delivered)

    async def _named_server_limit_reached(self, request: LaunchRequest) -> str:
        """BinderHub's message if the logged-in user has BINDER_AUTH_NAMED_SERVER_LIMIT_PER_USER servers, else ''.

        The hub refuses a server beyond its named_server_limit_per_user too; asking first gives the message.
        """
        limit = self.config.auth.named_server_limit_per_user
        if not limit:
            return ""
        try:
            model = await self.hub.get_user(request.user)
        except HubError:
            return ""  # the hub refuses a server beyond its limit itself
        named = [name for name in (model.servers if model else {}) if name and name != request.server]
        return named_server_limit_message(request.user, limit) if len(named) >= limit else ""

    async def _binder_users(self) -> list[HubUser]:
        """binder-actors' temporary users; in authenticated mode also logged-in users with their Binder servers."""
        if not self.config.auth.enabled:
            return await self.hub.managed_users()
        return binder_users(await self.hub.list_users(), self.config.launch_host, logged_in=True)

    async def _list_for_admission(self) -> None:
        """List the hub's Binder sessions into admission (under the admission lock)."""
        asked = self.admission.list_asked()
        self.admission.listed(await self._binder_users(), asked)

    async def _look_up(self, request: LaunchRequest) -> HubUser | None:
        """The hub's model of this launch's session: its temporary user, or the logged-in user with only that server."""
        model = await self.hub.get_user(request.user)
        if model is None or not request.owner:
            return model
        owned = owned_servers(model, self.config.launch_host)
        if owned is None or request.server not in owned.servers:
            return None
        return owned.model_copy(update={"servers": {request.server: owned.servers[request.server]}})

    async def _from_pool(self, method: str, request: LaunchRequest) -> BinderEvent | None:
        """ServerPool's `claim` or `claimed` of this launch: a ready event, or None to start a server here.

        A pool that cannot answer costs the launch its head start, never the launch.
        """
        try:
            if self._pool is None:
                self._pool = ray.get_actor("ServerPool", namespace=self.config.namespace)
            if method == "claim":
                return await self._pool.claim.remote(request, self.admission.sessions())
            return await self._pool.claimed.remote(request)
        except Exception as error:  # RayActorError, ValueError (not running), a hub error in the pool
            log.warning("no pooled server for user=%s: %s: %s", request.user, type(error).__name__, error)
            return None

    async def _admit(self, request: LaunchRequest) -> HubUser | None:
        """Take a place for `request.user` under one lock, so no quota is ever over-admitted.

        Admission decides; this does the hub calls it asks for first. If the hub already has the
        user, nothing is taken and its model is returned. QuotaExceeded if admission refuses.
        The user is made later, once a spawn slot is free, outside the lock, so a refusal never
        waits behind the hub's answers to other launches.
        """
        user, repo_url, spec = _run_key(request), request.resolved.repo_url, request.resolved.spec
        listed = looked_up = False
        async with self._admission_lock:
            while True:
                step = self.admission.decide(
                    user,
                    repo_url,
                    spec,
                    provider=request.resolved.provider,
                    listed=listed,
                    looked_up=looked_up,
                    claim_key=claim_key_of(request) if self.config.pool.enabled and not request.owner else "",
                )
                if isinstance(step, Refusal):
                    raise QuotaExceeded(step)
                if step is Step.ADMITTED:
                    return None
                if step is Step.LIST_FIRST:
                    await self._list_for_admission()
                    listed = True
                else:
                    existing = await self._look_up(request)
                    if existing is not None:
                        return existing
                    looked_up = True

    async def _spawn(self, user: str, request: LaunchRequest) -> AsyncIterator[BinderEvent]:
        server_name = request.server or (server_name_for_launch() if self.config.named_servers else "")
        try:
            scopes = [server_scope(user, request.server)]  # a logged-in user's token opens that one server
            token = await self.hub.create_token(user, note="binder session", scopes=scopes)
            options = launch_options(request, token=token, launch_host=self.config.launch_host)
            yield progress("launching", "Launching server...")
            deadline = asyncio.get_running_loop().time() + self.config.launch_timeout
            await asyncio.wait_for(
                self.hub.start_server(user, server_name, options.model_dump()), self.config.launch_timeout
            )
            async for message in self.hub.follow_spawn(user, server_name, deadline):
                yield progress("launching", message)
            model = await self.hub.get_user(user)
            server = model.servers.get(server_name) if model else None
            if server is None or not server.ready:
                raise HubError("The server stopped while it was starting.", 500)
        except (HubError, TimeoutError, asyncio.TimeoutError) as error:
            await self._discard(request)
            message = str(error) or "The server did not become ready in time."
            if isinstance(error, HubUnavailable):
                message = f"{message.rstrip('.')}. Try again in a moment."
            if isinstance(error, asyncio.TimeoutError):
                timeout = self.config.launch_timeout
                message = f"The server was not ready after BINDER_LAUNCH_TIMEOUT={timeout:g}s."
            yield failed(f"Launch failed: {message}", getattr(error, "status_code", 500))
            return
        except BaseException:
            await asyncio.shield(self._discard(request))
            raise
        self.launches += 1
        log.info("session ready user=%s image=%s", user, request.image)
        yield options.ready_event(self.hub.hub_url.rstrip("/") + server.url)

    async def _discard(self, request: LaunchRequest) -> None:
        """Remove a failed launch's user (a logged-in user's: only its server), its server stopped (pending or not).

        If the hub cannot do it now (it is down, restarting, or slow to stop the server), keep
        trying in the background until it can: a failed launch leaves nothing behind once the hub is back.
        """
        await self._cleanup.remove(request.user, request.server if request.owner else "")

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def list_sessions(self, owner: str | None = None) -> list[Session]:
        """Every Binder session; with `owner` (a logged-in user), only theirs. Pooled servers no launch has
        claimed are not sessions (ServerPool's status shows them)."""
        users = [user for user in await self._binder_users() if not user.waiting_in_pool]
        if owner is not None:
            users = [user for user in users if user.name == owner and not user.managed]
        return [s for user in users for s in user.sessions(self.hub.hub_url)]

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def session_count(self) -> int:
        """The sessions admission counts (its list of the hub, listed again only when due, and the
        launches since): /health's figure, which costs no list of the hub's users per call."""
        async with self._admission_lock:
            if self.admission.list_due():
                await self._list_for_admission()
            return self.admission.counted()

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def stop(self, user: str, server: str = "", owner: str | None = None) -> None:
        """Stop a session: delete its temporary user (HubClient.remove_user), or, in authenticated mode,
        stop and remove the Binder server `server` of the logged-in `user` (never the user).

        With `owner` (who asks), only a session of that user: HubError 403 for anyone else's.
        """
        if owner is not None and owner != user:
            raise HubError(f"User {owner} may not stop a session of another user.", 403)
        if not (server and self.config.auth.enabled):
            if owner is not None:
                raise HubError("Name the server of your session to stop (see `binder-actors sessions`).", 400)
            await self.hub.remove_user(user)
            return
        model = await self.hub.get_user(user)
        if model is not None and model.managed and owner is None:
            await self.hub.remove_user(user)
            return
        owned = owned_servers(model, self.config.launch_host) if model is not None else None
        if owned is None or server not in owned.servers:
            raise HubError(f"User {user} has no Binder session named {server}.", 404)
        await self.hub.remove_server(user, server)

    async def user_of_token(self, token: str) -> str | None:
        """In authenticated mode, the hub user of an API token (None if the hub refuses it): whom the Python
        client acts as. With auth off, '': a token changes nothing."""
        return await self.hub.user_of_token(token) if self.config.auth.enabled else ""

    async def health(self) -> HubHealth:
        try:
            version = await self.hub.version()
            return HubHealth(ok=True, version=version)
        except HubError as error:
            return HubHealth(ok=False, error=str(error))
