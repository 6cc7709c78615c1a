"""SessionManager: launches sessions through JupyterHub's REST API and lists them from the hub.

JupyterHub is the source of truth: a session is a hub user with a server, and its Binder fields
live in the server's user_options. Nothing here survives a restart that the hub does not hold.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import ray
from pydantic import BaseModel

from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent, failed, progress
from binder_actors.hub import HubClient, HubError
from binder_actors.logs import setup_logging
from binder_actors.names import server_name_for_launch, user_name_for_repo
from binder_actors.policy import repo_quota
from binder_actors.providers.base import ResolvedRef

log = logging.getLogger(__name__)


DISCARD_POLLS = 150
DISCARD_POLL_SECONDS = 0.2


class LaunchRequest(BaseModel):
    image: str
    resolved: ResolvedRef
    binder_request: str
    binder_persistent_request: str
    user: str = ""  # the temporary user's name, chosen by the caller so it can clean up after a crash


class Session(BaseModel):
    """One running (or starting) Binder session, as the hub reports it."""

    user: str
    server: str = ""
    repo_url: str = ""
    image: str = ""
    url: str = ""
    ready: bool = False
    started: datetime | None = None
    last_activity: datetime | None = None


class QuotaExceeded(Exception):
    pass


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
        self._launching: dict[str, str] = {}  # user -> repo_url of launches in progress
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
        """Start a server for `request.image`; launching events, then ready or failed."""
        try:
            user = await self._admit(request)
        except QuotaExceeded as error:
            yield failed(str(error), 429)
            return
        except HubError as error:
            yield failed(f"Could not start a session: {error}", error.status_code)
            return
        try:
            async for event in self._spawn(user, request):
                yield event
        finally:
            del self._launching[user]

    async def _admit(self, request: LaunchRequest) -> str:
        """Count sessions and create the user under one lock, so no quota is ever over-admitted.

        A session counts from the moment its user is created (in `_launching`) until the hub
        no longer lists its server.
        """
        repo_url = request.resolved.repo_url
        async with self._admission:
            if self.config.max_sessions <= 0:
                raise QuotaExceeded("This BinderHub is in maintenance: no new sessions. Try again later.")
            users = await self.hub.list_users()
            settled = [
                s for u in users if u["name"] not in self._launching for s in session_from_hub(self.hub.hub_url, u)
            ]
            if len(settled) + len(self._launching) >= self.config.max_sessions:
                raise QuotaExceeded("Too many users on this BinderHub! Try again soon.")
            quota = repo_quota(request.resolved.spec, self.config)
            of_repo = sum(s.repo_url == repo_url for s in settled)
            of_repo += sum(r == repo_url for r in self._launching.values())
            if quota and of_repo >= quota:
                raise QuotaExceeded(f"Too many users running {repo_url}! Try again soon.")
            user = request.user or user_name_for_repo(repo_url)
            await self.hub.create_user(user)
            self._launching[user] = repo_url
            return user

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
            if isinstance(error, asyncio.TimeoutError):
                timeout = self.config.launch_timeout
                message = f"The server was not ready after BINDER_LAUNCH_TIMEOUT={timeout}s."
            yield failed(f"Launch failed: {message}", getattr(error, "status_code", 500))
            return
        except BaseException:
            await asyncio.shield(self._discard(user))
            raise
        self.launches += 1
        url = self.hub.hub_url.rstrip("/") + server["url"]
        log.info("session ready user=%s image=%s", user, request.image)
        yield BinderEvent(
            phase="ready",
            message=f"server running at {url}\n",
            url=url,
            token=token,
            image=request.image,
            repo_url=resolved.repo_url,
            binder_ref_url=resolved.ref_url,
            binder_launch_host=self.config.launch_host,
            binder_request=request.binder_request,
            binder_persistent_request=request.binder_persistent_request,
        )

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
        """Stop a failed launch's server (pending or not) and delete its user, logging a failure."""
        try:
            await self.stop(user)
        except HubError as error:
            log.warning("could not remove user=%s after a failed launch (the culler will): %s", user, error)

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

    async def health(self) -> dict[str, Any]:
        try:
            version = await self.hub.version()
            return {"ok": True, "version": version}
        except HubError as error:
            return {"ok": False, "error": str(error)}
