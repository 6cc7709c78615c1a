"""JupyterHub REST API client (async httpx); the typed models of what the hub answers are in hub_models.py.

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
from pydantic import BaseModel, ValidationError

from binder_actors.hub_models import MANAGED_GROUP, HubUser, SpawnProgress
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
# Users a page of the hub's list holds; the hub's api_page_max_limit must be at least this
# (the embedded hub and cluster/jupyterhub/values.yaml set it), else the hub answers smaller pages.
LIST_PAGE_SIZE = 1000


class HubError(Exception):
    """The hub answered, but not with success; `status_code` is its HTTP status."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses Ray (an actor's error reaches its caller) whatever its subclass's __init__ takes.
        return _rebuilt_hub_error, (type(self), str(self), self.status_code)


def _rebuilt_hub_error(kind: type[HubError], message: str, status_code: int) -> HubError:
    error = Exception.__new__(kind)
    Exception.__init__(error, message)
    error.status_code = status_code
    return error


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

    async def remove_server(self, user: str, server_name: str) -> None:
        """Stop a named server and delete it, so it no longer counts against the user's limit; the user stays."""
        await self.request("DELETE", _server_path(user, server_name), body={"remove": True}, ok=(202, 204, 404))

    async def user_of_token(self, token: str) -> str | None:
        """The name of the hub user `token` (an API or OAuth token) belongs to; None if the hub refuses it
        or it is not a user's (a service's)."""
        try:
            model = await self.request("GET", "user", headers={"Authorization": f"token {token}"})
        except HubError as error:
            if error.status_code in (401, 403):
                return None
            raise
        if not isinstance(model, dict) or model.get("kind", "user") != "user" or not model.get("name"):
            return None
        return str(model["name"])

    async def oauth_token(self, code: str, client_id: str, client_secret: str, redirect_uri: str) -> str:
        """The access token the hub gives an OAuth client (a service) for the authorization `code` of a login."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uri": redirect_uri,
        }
        try:
            response = await self._client.post("oauth2/token", data=form)
        except httpx.TransportError as error:
            raise HubUnavailable(f"JupyterHub at {self.hub_url} cannot be reached ({type(error).__name__}).") from None
        if response.status_code != 200:
            raise HubError(_error_message(response), response.status_code)
        token = response.json().get("access_token") if "json" in response.headers.get("content-type", "") else None
        if not isinstance(token, str) or not token:
            raise HubError("JupyterHub answered the code without an access token", 502)
        return token

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

    async def list_users(
        self, page_size: int = LIST_PAGE_SIZE, *, sort: str = "id", until: datetime | None = None
    ) -> list[HubUser]:
        """Every user, paging through the hub's list sorted by `sort` (id, name or last_activity).

        With `until` (sorted by last_activity, oldest first, never-active first), paging stops at
        the first user active after `until`: only the users that may have been idle since are read.
        """
        users: list[HubUser] = []
        offset = 0
        while True:
            page = await self.request(
                "GET", f"users?sort={sort}&offset={offset}&limit={page_size}", headers={"Accept": _PAGINATION}
            )
            items = page["items"] if isinstance(page, dict) else page
            read = [_read(HubUser, item) for item in items]
            if until is not None:
                older = [user for user in read if user.last_activity is None or user.last_activity <= until]
                if len(older) < len(read):
                    return users + older
            users.extend(read)
            following = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
            if not following or not items:
                return users
            offset = int(following["offset"])

    async def idle_since(self, moment: datetime) -> list[HubUser]:
        """The users without activity after `moment` (a user's activity is at least its servers')."""
        return await self.list_users(sort="last_activity", until=moment)

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
