"""SessionManager: launches sessions through JupyterHub's REST API and lists them from the hub.

JupyterHub is the source of truth: a session is a hub user with a server, and its Binder fields
live in the server's user_options. Nothing here survives a restart that the hub does not hold.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import ray

from binder_actors.backlog import Backlog
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent, failed, progress
from binder_actors.hub import HubClient, HubError, HubUnavailable
from binder_actors.logs import setup_logging
from binder_actors.models import HubHealth, LaunchRequest, Session
from binder_actors.names import server_name_for_launch, user_name_for_repo
from binder_actors.policy import repo_quota

log = logging.getLogger(__name__)


DISCARD_POLLS = 150
DISCARD_POLL_SECONDS = 0.2
ADMISSION_LIST_SECONDS = 5.0
ADMISSION_RECHECK_SECONDS = 1.0
REMOVE_RETRY_FIRST_SECONDS = 1.0
REMOVE_RETRY_MAX_SECONDS = 30.0


class QuotaExceeded(Exception):
    pass


NOT_YOURS = "This launch id belongs to another launch: start a new launch (reload the page)."


def launch_key_of(user: dict[str, Any]) -> str:
    """The launch key a hub user's server was started with ('' if none)."""
    for server in (user.get("servers") or {}).values():
        return str((server.get("user_options") or {}).get("binder_launch_key", ""))
    return ""


def _same_launch(known: str, asked: str) -> bool:
    """Whether a request may re-attach: it carries the launch's key (a launch without one is nobody's)."""
    return bool(known) and hmac.compare_digest(known, asked)


def ready_event(url: str, user_options: dict[str, Any]) -> BinderEvent:
    """BinderHub's ready event of a server at `url`, from the Binder fields of its user_options."""
    return BinderEvent(
        phase="ready",
        message=f"server running at {url}\n",
        url=url,
        token=user_options["token"],
        image=user_options["image"],
        repo_url=user_options["repo_url"],
        binder_ref_url=user_options["binder_ref_url"],
        binder_launch_host=user_options["binder_launch_host"],
        binder_request=user_options["binder_request"],
        binder_persistent_request=user_options["binder_persistent_request"],
    )


def ready_event_of(hub_url: str, user: dict[str, Any]) -> BinderEvent | None:
    """The ready event of a hub user's ready server, or None if it has none."""
    for server in (user.get("servers") or {}).values():
        options = server.get("user_options") or {}
        if server.get("ready") and not server.get("pending") and "token" in options:
            return ready_event(hub_url.rstrip("/") + server["url"], options)
    return None


def session_from_hub(hub_url: str, user: dict[str, Any]) -> list[Session]:
    """The sessions in one hub user model (one per server)."""
    sessions = []
    for server_name, server in (user.get("servers") or {}).items():
        options = server.get("user_options") or {}
        sessions.append(
            Session(
                user=user["name"],
                server=server_name,
                repo_url=options.get("repo_url", ""),
                image=options.get("image", ""),
                url=hub_url.rstrip("/") + server.get("url", ""),
                ready=bool(server.get("ready")),
                started=server.get("started"),
                last_activity=server.get("last_activity"),
            )
        )
    return sessions


class SessionManager:
    async def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.hub = HubClient(config.hub_url, config.hub_api_token.get_secret_value())
        self._admission = asyncio.Lock()
        self._spawn_slots = asyncio.Semaphore(max(1, config.max_concurrent_spawns))
        self._launching: dict[str, str] = {}  # user -> repo_url of launches in progress
        # What admission counts: the hub's sessions at its last list, and the users created since.
        self._listed_at = self._listed_done = float("-inf")
        self._listed_users: set[str] = set()
        self._listed: dict[str, str] = {}  # user -> repo_url
        self._since_listed: dict[str, tuple[str, float]] = {}  # user -> (repo_url, when)
        self._runs: dict[str, tuple[str, Backlog[BinderEvent]]] = {}  # user -> (launch key, launch), while it runs
        self._to_remove: set[str] = set()  # users of failed launches the hub could not remove yet
        self._remover: asyncio.Task[None] | None = None
        self.launches = 0
        self.reconciled = await self._remove_orphans()

    async def _remove_orphans(self) -> list[str]:
        """Remove the users of launches that were in flight when a previous SessionManager died.

        No launch outlives its SessionManager: whoever asked got a `failed` event saying to retry.
        So at start, a temporary user without a running server, or whose spawn is still pending,
        belongs to nobody and nothing else would remove it soon (the culler waits for idleness).
        """
        try:
            users = await self.hub.list_users()
        except HubError as error:
            log.warning("could not look for orphaned sessions at start: %s", error)
            return []
        orphans = [
            user["name"]
            for user in users
            if not user.get("admin")
            and (not user.get("servers") or any(s.get("pending") for s in user["servers"].values()))
        ]
        for name in orphans:
            log.info("removing an orphaned launch user=%s", name)
            try:
                await self.stop(name)
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
        known = self._runs.get(request.user)
        if known is None:
            run: Backlog[BinderEvent] = Backlog(self._launch(request))
            self._runs[request.user] = (request.launch_key, run)
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
            self._runs.pop(request.user, None)

    async def _admit_and_spawn(self, request: LaunchRequest) -> AsyncIterator[BinderEvent]:
        user = request.user
        for _ in range(2):
            try:
                existing = await self._admit(request)
            except QuotaExceeded as error:
                yield failed(str(error), 429)
                return
            except HubError as error:
                message = f"Could not start a session: {str(error).rstrip('.')}. Try again in a moment."
                yield failed(message, error.status_code)
                return
            if existing is None:
                break
            if existing.get("servers") and not _same_launch(launch_key_of(existing), request.launch_key):
                yield failed(NOT_YOURS, 409)
                return
            ready = ready_event_of(self.hub.hub_url, existing)
            if ready is not None:  # asked again for a session already delivered
                yield ready
                return
            await self._discard(user)  # half-made by this launch before its manager died: start over
        else:
            yield failed("Could not start a session: its last attempt is still stopping. Try again in a moment.", 503)
            return
        delivered = False
        try:
            if self._spawn_slots.locked():
                yield progress("launching", "Waiting for other servers to start...")
            # At most BINDER_MAX_CONCURRENT_SPAWNS at once: a hub asked for a hundred spawns at the
            # same moment stops answering in time, and they all start sooner one slot at a time.
            async with self._spawn_slots:
                try:
                    await self.hub.create_user(user)
                except HubError as error:
                    yield failed(
                        f"Could not start a session: {str(error).rstrip('.')}. Try again in a moment.",
                        error.status_code,
                    )
                    return
                async for event in self._spawn(user, request):
                    delivered = event.phase == "ready"
                    yield event
        finally:
            repo_url = self._launching.pop(user, "")
            if delivered:  # counted until a hub list made after this shows it
                self._since_listed[user] = (repo_url, time.monotonic())
            else:
                self._since_listed.pop(user, None)

    async def _admit(self, request: LaunchRequest) -> dict[str, Any] | None:
        """Count sessions and take a place under one lock, so no quota is ever over-admitted.

        A session counts from the moment its place is taken (in `_launching`) until the hub
        no longer lists its server. The hub's list is fetched at most every ADMISSION_LIST_SECONDS
        (a list per launch made 200 simultaneous launches wait minutes in this lock): sessions made
        since are counted from `_since_listed`, and ended ones count until the next list, so a stale
        count only ever refuses, and a refusal is checked against a list at most a second old.
        If the hub already has `request.user`, nothing is created and its model is returned.
        """
        repo_url = request.resolved.repo_url
        async with self._admission:
            if self.config.max_sessions <= 0:
                raise QuotaExceeded("This BinderHub is in maintenance: no new sessions. Try again later.")
            if self._listed_age() > ADMISSION_LIST_SECONDS:
                await self._list_for_admission()
            if request.user in self._listed_users or request.user in self._since_listed:
                existing = await self.hub.get_user(request.user)
                if existing is not None:
                    return existing
            refusal = self._over_quota(request)
            if refusal and time.monotonic() - self._listed_done > ADMISSION_RECHECK_SECONDS:
                await self._list_for_admission()
                refusal = self._over_quota(request)
            if refusal:
                raise QuotaExceeded(refusal)
            # The place is taken here; the user is made once a spawn slot is free, outside the
            # lock, so a refusal never waits behind the hub's answers to other launches.
            self._launching[request.user] = repo_url
            self._since_listed[request.user] = (repo_url, time.monotonic())
        return None

    def _listed_age(self) -> float:
        return time.monotonic() - self._listed_at

    async def _list_for_admission(self) -> None:
        asked = time.monotonic()
        users = await self.hub.list_users()
        self._listed_at = asked
        self._listed_done = time.monotonic()
        self._listed_users = {user["name"] for user in users}
        self._listed = {s.user: s.repo_url for user in users for s in session_from_hub(self.hub.hub_url, user)}
        # Sessions delivered while the list was on its way may be missing from it: keep counting them.
        self._since_listed = {user: made for user, made in self._since_listed.items() if made[1] >= asked}

    def _over_quota(self, request: LaunchRequest) -> str:
        """The quota message if one more session of this repository is one too many, else ''."""
        since = {user: repo_url for user, (repo_url, _) in self._since_listed.items()}
        counted = {**self._listed, **since, **self._launching}  # user -> repo_url
        if len(counted) >= self.config.max_sessions:
            return "Too many users on this BinderHub! Try again soon."
        repo_url = request.resolved.repo_url
        quota = repo_quota(request.resolved.spec, self.config)
        if quota and sum(r == repo_url for r in counted.values()) >= quota:
            return f"Too many users running {repo_url}! Try again soon."
        return ""

    async def _spawn(self, user: str, request: LaunchRequest) -> AsyncIterator[BinderEvent]:
        resolved = request.resolved
        server_name = server_name_for_launch() if self.config.named_servers else ""
        try:
            token = await self.hub.create_token(user, note="binder session", scopes=[f"access:servers!user={user}"])
            user_options = {
                "image": request.image,
                "token": token,
                "repo_url": resolved.repo_url,
                "binder_ref_url": resolved.ref_url,
                "binder_launch_host": self.config.launch_host,
                "binder_request": request.binder_request,
                "binder_persistent_request": request.binder_persistent_request,
                "binder_launch_key": request.launch_key,
            }
            yield progress("launching", "Launching server...")
            deadline = asyncio.get_running_loop().time() + self.config.launch_timeout
            await asyncio.wait_for(self.hub.start_server(user, server_name, user_options), self.config.launch_timeout)
            async for event in self._follow_spawn(user, server_name, deadline):
                yield event
            model = await self.hub.get_user(user)
            server = ((model or {}).get("servers") or {}).get(server_name) or {}
            if not server.get("ready"):
                raise HubError("The server stopped while it was starting.", 500)
        except (HubError, TimeoutError, asyncio.TimeoutError) as error:
            await self._discard(user)
            message = str(error) or "The server did not become ready in time."
            if isinstance(error, HubUnavailable):
                message = f"{message.rstrip('.')}. Try again in a moment."
            if isinstance(error, asyncio.TimeoutError):
                timeout = self.config.launch_timeout
                message = f"The server was not ready after BINDER_LAUNCH_TIMEOUT={timeout}s."
            yield failed(f"Launch failed: {message}", getattr(error, "status_code", 500))
            return
        except BaseException:
            await asyncio.shield(self._discard(user))
            raise
        self.launches += 1
        log.info("session ready user=%s image=%s", user, request.image)
        yield ready_event(self.hub.hub_url.rstrip("/") + server["url"], user_options)

    async def _follow_spawn(self, user: str, server_name: str, deadline: float) -> AsyncIterator[BinderEvent]:
        """Relay the hub's spawn progress until the server is ready, within the launch timeout."""
        queue: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in self.hub.progress(user, server_name):
                    await queue.put(event)
                await queue.put(None)
            except BaseException as error:  # handed to the reader, who re-raises it
                await queue.put(error)

        task = asyncio.create_task(pump())
        try:
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                item = await asyncio.wait_for(queue.get(), max(remaining, 0.001))
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if item.get("failed"):
                    raise HubError(item.get("message") or "The server failed to start.", 500)
                if item.get("message") and not item.get("ready"):
                    yield progress("launching", item["message"])
                if item.get("ready"):
                    return
        finally:
            task.cancel()

    async def _discard(self, user: str) -> None:
        """Stop a failed launch's server (pending or not) and delete its user.

        If the hub cannot do it now (it is down or restarting), keep trying in the background
        until it can: a failed launch leaves nothing behind once the hub is back.
        """
        try:
            await self.stop(user)
        except HubError as error:
            log.warning("could not remove user=%s after a failed launch, retrying in the background: %s", user, error)
            self._to_remove.add(user)
            if self._remover is None or self._remover.done():
                self._remover = asyncio.create_task(self._remove_later())

    async def _remove_later(self) -> None:
        delay = REMOVE_RETRY_FIRST_SECONDS
        while self._to_remove:
            await asyncio.sleep(delay)
            for user in list(self._to_remove):
                if user in self._runs:  # launched again meanwhile: let that launch finish first
                    continue
                try:
                    await self.stop(user)
                except HubError:
                    continue
                self._to_remove.discard(user)
                log.info("removed user=%s of a failed launch", user)
            delay = min(delay * 2, REMOVE_RETRY_MAX_SECONDS)

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def list_sessions(self) -> list[Session]:
        users = await self.hub.list_users()
        return [s for user in users for s in session_from_hub(self.hub.hub_url, user)]

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def stop(self, user: str) -> None:
        """Stop a session's servers and delete its temporary user.

        The hub refuses to delete a user whose server is still stopping, so wait for that first.
        """
        model = await self.hub.get_user(user) or {}
        for server_name in model.get("servers") or {}:
            await self.hub.stop_server(user, server_name)
        for _ in range(DISCARD_POLLS):
            model = await self.hub.get_user(user)
            if not model or not model.get("servers"):
                break
            await asyncio.sleep(DISCARD_POLL_SECONDS)
        await self.hub.delete_user(user)

    async def health(self) -> HubHealth:
        try:
            version = await self.hub.version()
            return HubHealth(ok=True, version=version)
        except HubError as error:
            return HubHealth(ok=False, error=str(error))
