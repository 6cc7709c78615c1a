"""JupyterHub REST API client (async httpx) and the typed models of what the hub answers.

Only SessionManager, ActivityMonitor and the embedded stack's shutdown talk to the hub, always through
this client. The API token travels in a header and never appears in a message, log line or exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from binder_actors.events import BinderEvent
from binder_actors.models import Session
from binder_actors.retry import RetryPolicy

log = logging.getLogger(__name__)

_PAGINATION = "application/jupyterhub-pagination+json"
RETRIES = 3
RETRY_FIRST_DELAY = 0.25
RETRY_STATUSES = frozenset({502, 503, 504})
_RETRY = RetryPolicy(attempts=RETRIES + 1, first_delay=RETRY_FIRST_DELAY)
M = TypeVar("M", bound=BaseModel)
STOP_WAIT_SECONDS = 30.0  # how long remove_user waits for the hub to say a user's servers stopped
STOP_POLL_SECONDS = 0.2
# The hub group every user binder-actors creates joins. It stops, deletes and culls only its members,
# so on a hub shared with real users (BINDER_HUB_URL) theirs are never touched.
MANAGED_GROUP = "binder-actors"
# A pooled server's user is also in its deployment's pool group, and once a launch claims it, in that
# launch's claim group (hub_records.py): the hub holds the pool's state.
POOL_GROUP_PREFIX = "binder-actors-pool-"
CLAIM_GROUP_PREFIX = "binder-actors-claim-"


class _HubModel(BaseModel):
    """Lenient: fields the hub adds are ignored, and a missing or null optional field takes its default."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        if value is None and info.field_name:
            field = cls.model_fields[info.field_name]
            if not field.is_required() and field.default is not None:
                return field.get_default(call_default_factory=True)
        return value


class BinderOptions(_HubModel):
    """The Binder fields of a server's user_options: what SessionManager started it with.

    Servers binder-actors did not start may hold anything under these names: what is not text is
    read as absent, so one odd user on a shared hub cannot break admission or the culler.
    """

    image: str = ""
    token: str = Field("", repr=False)
    repo_url: str = ""
    binder_ref_url: str = ""
    binder_launch_host: str = ""
    binder_request: str = ""
    binder_persistent_request: str = ""
    binder_launch_key: str = Field("", repr=False)
    binder_pool: str = ""  # the pool group of a server started ahead of its launch ('' for any other)

    @field_validator("*", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        return value if isinstance(value, str) else ""

    def ready_event(self, url: str) -> BinderEvent:
        """BinderHub's ready event of a server at `url` started with these options."""
        return BinderEvent(
            phase="ready",
            message=f"server running at {url}\n",
            url=url,
            token=self.token,
            image=self.image,
            repo_url=self.repo_url,
            binder_ref_url=self.binder_ref_url,
            binder_launch_host=self.binder_launch_host,
            binder_request=self.binder_request,
            binder_persistent_request=self.binder_persistent_request,
        )


class HubServer(_HubModel):
    """One server of a hub user (the hub's server model)."""

    name: str = ""
    ready: bool = False
    pending: str | None = None  # "spawn" or "stop" while the hub is doing it
    url: str = ""
    started: datetime | None = None
    last_activity: datetime | None = None
    user_options: BinderOptions = Field(default_factory=BinderOptions)

    def ready_event(self, hub_url: str) -> BinderEvent | None:
        """The ready event of this server if it is a ready Binder session, else None."""
        if not self.ready or self.pending or not self.user_options.token:
            return None
        return self.user_options.ready_event(hub_url.rstrip("/") + self.url)


class HubUser(_HubModel):
    """A hub user (the hub's user model); a Binder session is a temporary user with a server."""

    name: str
    admin: bool = False
    created: datetime | None = None
    groups: list[str] = []
    servers: dict[str, HubServer] = {}

    @property
    def managed(self) -> bool:
        """Whether binder-actors created it (it is in MANAGED_GROUP), so it may stop or delete it."""
        return MANAGED_GROUP in self.groups

    @property
    def pooled(self) -> bool:
        """Started ahead of a launch by a ServerPool (claimed or not)."""
        return any(group.startswith(POOL_GROUP_PREFIX) for group in self.groups)

    @property
    def waiting_in_pool(self) -> bool:
        """A pooled server no launch has claimed: not a session yet, the pool's alone."""
        return self.pooled and not any(group.startswith(CLAIM_GROUP_PREFIX) for group in self.groups)

    @property
    def launch_key(self) -> str:
        """The launch key its server was started with ('' if none)."""
        return next((s.user_options.binder_launch_key for s in self.servers.values()), "")

    def ready_event(self, hub_url: str) -> BinderEvent | None:
        """The ready event of its ready server, or None if it has none."""
        return next((e for s in self.servers.values() if (e := s.ready_event(hub_url))), None)

    def sessions(self, hub_url: str) -> list[Session]:
        """Its sessions, one per server."""
        return [
            Session(
                user=self.name,
                server=server_name,
                repo_url=server.user_options.repo_url,
                image=server.user_options.image,
                url=hub_url.rstrip("/") + server.url,
                ready=server.ready,
                started=server.started,
                last_activity=server.last_activity,
            )
            for server_name, server in self.servers.items()
        ]


class SpawnProgress(_HubModel):
    """One event of the hub's spawn progress stream."""

    progress: float | None = None
    message: str = ""
    ready: bool = False
    failed: bool = False
    url: str | None = None


class HubError(Exception):
    """The hub answered, but not with success; `status_code` is its HTTP status."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class HubUnavailable(HubError):
    """The hub could not be reached at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 503)


class NotManaged(HubError):
    """The user exists but binder-actors did not create it: it is left alone."""

    def __init__(self, user: str) -> None:
        super().__init__(
            f"User {user} was not created by binder-actors (not in group {MANAGED_GROUP}): left alone.", 403
        )


class HubStillStopping(HubError):
    """A user's servers had not stopped by the deadline, so the user is not deleted yet."""

    def __init__(self, user: str, seconds: float) -> None:
        super().__init__(f"JupyterHub was still stopping the servers of user {user} after {seconds:g}s.", 503)


def _server_path(user: str, server_name: str) -> str:
    user_path = f"users/{quote(user, safe='')}"
    return f"{user_path}/servers/{quote(server_name, safe='')}" if server_name else f"{user_path}/server"


class HubClient:
    """One HTTP client per hub; `hub_url` is the hub's public URL (the proxy)."""

    def __init__(self, hub_url: str, api_token: str, timeout: float = 30.0) -> None:
        self.hub_url = hub_url.rstrip("/") + "/"
        self._client = httpx.AsyncClient(
            base_url=self.hub_url + "hub/api/",
            headers={"Authorization": f"token {api_token}"},
            timeout=timeout,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One API call, retried with backoff while the hub is unreachable or answers 502-504.

        Those answers come from the proxy or the network, before the hub acted, so a retry is safe;
        so does a 404 that is not the hub's JSON (a restarted proxy without its route to the hub yet).
        """
        try:
            response = await _RETRY.call(
                lambda: self._client.request(method, path, json=body, headers=headers),
                retry_on_error=lambda error: isinstance(error, httpx.TransportError),
                retry_on_result=_before_the_hub,
            )
        except httpx.TransportError as error:
            raise HubUnavailable(f"JupyterHub at {self.hub_url} cannot be reached ({type(error).__name__}).") from None
        if _before_the_hub(response):
            raise HubUnavailable(f"JupyterHub at {self.hub_url} is unavailable ({response.status_code}).")
        if response.status_code not in ok:
            raise HubError(_error_message(response), response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def version(self) -> str:
        info = await self.request("GET", "")
        return str(info.get("version", ""))

    async def get_user(self, name: str) -> HubUser | None:
        try:
            return _read(HubUser, await self.request("GET", f"users/{quote(name, safe='')}"))
        except HubError as error:
            if error.status_code == 404:
                return None
            raise

    async def create_user(self, name: str) -> None:
        """Create `name` as a user of binder-actors' own: a member of MANAGED_GROUP (made if missing).

        Creating and marking are two calls: a caller killed between them leaves an unmarked user
        without a server under a name only its launch knows (launch user names carry a hash of the
        launch id), so a user that already exists without any server is taken over and marked. One
        with a server is a session already: HubError 409.
        """
        try:
            await self.request("POST", f"users/{quote(name, safe='')}", body={})
        except HubError as error:
            existing = await self.get_user(name) if error.status_code == 409 else None
            if existing is None or existing.servers:
                raise
        try:
            try:
                await self._join_managed_group(name)
            except HubError as error:
                if error.status_code != 404:
                    raise
                await self.ensure_managed_group()
                await self._join_managed_group(name)
        except HubError:
            await self.delete_user(name)  # made by this launch a moment ago: never leave it unmarked
            raise

    async def _join_managed_group(self, name: str) -> None:
        await self.request("POST", f"groups/{MANAGED_GROUP}/users", body={"users": [name]})

    async def ensure_managed_group(self) -> None:
        """Create MANAGED_GROUP unless the hub has it (the hub's service needs the admin:groups scope)."""
        await self.request("POST", f"groups/{MANAGED_GROUP}", body={}, ok=(200, 201, 409))

    async def delete_user(self, name: str) -> None:
        await self.request("DELETE", f"users/{quote(name, safe='')}", ok=(200, 204, 404))

    async def create_token(self, name: str, note: str, scopes: list[str]) -> str:
        answer = await self.request(
            "POST", f"users/{quote(name, safe='')}/tokens", body={"note": note, "scopes": scopes}
        )
        return str(answer["token"])

    async def start_server(self, user: str, server_name: str, user_options: dict[str, Any]) -> None:
        """Ask the hub to spawn (201 started, 202 pending); progress() follows it."""
        await self.request("POST", _server_path(user, server_name), body=user_options, ok=(201, 202))

    async def stop_server(self, user: str, server_name: str = "") -> None:
        await self.request("DELETE", _server_path(user, server_name), ok=(202, 204, 400, 404))

    async def progress(self, user: str, server_name: str = "") -> AsyncIterator[SpawnProgress]:
        """The spawn's progress events (the hub's own event stream), until it ends."""
        path = _server_path(user, server_name) + "/progress"
        try:
            async with self._client.stream(
                "GET", path, headers={"Accept": "text/event-stream"}, timeout=None
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise HubError(_error_message(response), response.status_code)
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        yield _read(SpawnProgress, json.loads(line[5:]))
        except httpx.HTTPError as error:
            raise HubUnavailable(f"JupyterHub at {self.hub_url} stopped answering ({type(error).__name__}).") from None

    async def list_users(self, page_size: int = 200) -> list[HubUser]:
        """Every user, paging through the hub's list."""
        users: list[HubUser] = []
        offset = 0
        while True:
            page = await self.request(
                "GET", f"users?offset={offset}&limit={page_size}", headers={"Accept": _PAGINATION}
            )
            items = page["items"] if isinstance(page, dict) else page
            users.extend(_read(HubUser, item) for item in items)
            following = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
            if not following or not items:
                return users
            offset = int(following["offset"])

    async def managed_users(self) -> list[HubUser]:
        """The users binder-actors created (members of MANAGED_GROUP), paging through the hub's list."""
        return [user for user in await self.list_users() if user.managed]

    async def remove_user(self, name: str, stop_within: float = STOP_WAIT_SECONDS, *, made_here: bool = False) -> None:
        """Stop every server of `name`, wait until the hub says they stopped, then delete the user.

        NotManaged if binder-actors did not create `name`: such a user is never stopped or deleted,
        unless `made_here` (the caller created it for a launch that failed, perhaps before marking it).

        The hub refuses to delete a user whose server is still stopping (and a slow spawner answers
        a stop with 202, stopping in the background), so the deletion waits for the hub's word.
        A user already gone, at any point, is removed. HubStillStopping if the servers take longer
        than `stop_within` seconds: the user stays, for a later call to delete.
        """
        user = await self.get_user(name)
        if user is None:
            return
        if not (user.managed or made_here):
            raise NotManaged(name)
        for server_name in user.servers:
            await self.stop_server(name, server_name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stop_within
        while user.servers:
            if loop.time() > deadline:
                raise HubStillStopping(name, stop_within)
            await asyncio.sleep(STOP_POLL_SECONDS)
            user = await self.get_user(name)
            if user is None:
                return
        await self.delete_user(name)


def _read(model: type[M], answer: Any) -> M:
    """The hub's JSON as `model`; an answer that does not fit is the hub's error, not a crash of ours."""
    try:
        return model.model_validate(answer)
    except ValidationError as error:
        raise HubError(
            f"JupyterHub answered a {model.__name__} that cannot be read ({error.error_count()} errors)", 502
        ) from None


def _before_the_hub(response: httpx.Response) -> bool:
    """An answer of the proxy or the network, not of the hub: the hub never saw the request."""
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code == 404 and not response.headers.get("content-type", "").startswith("application/json")


def _error_message(response: httpx.Response) -> str:
    try:
        message = response.json().get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"JupyterHub answered {response.status_code}" + (f": {message}" if message else "")
