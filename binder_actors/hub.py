"""JupyterHub REST API client (async httpx): users, tokens, servers, spawn progress, activity.

Only SessionManager and ActivityMonitor talk to the hub, always through this client. The API
token travels in a header and never appears in a message, log line or exception.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from binder_actors.retry import RetryPolicy

log = logging.getLogger(__name__)

_PAGINATION = "application/jupyterhub-pagination+json"
RETRIES = 3
RETRY_FIRST_DELAY = 0.25
RETRY_STATUSES = frozenset({502, 503, 504})
_RETRY = RetryPolicy(attempts=RETRIES + 1, first_delay=RETRY_FIRST_DELAY)


class HubError(Exception):
    """The hub answered, but not with success; `status_code` is its HTTP status."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class HubUnavailable(HubError):
    """The hub could not be reached at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 503)


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

    async def get_user(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", f"users/{quote(name, safe='')}")
        except HubError as error:
            if error.status_code == 404:
                return None
            raise

    async def create_user(self, name: str) -> None:
        await self.request("POST", f"users/{quote(name, safe='')}", body={})

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

    async def progress(self, user: str, server_name: str = "") -> AsyncIterator[dict[str, Any]]:
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
                        yield json.loads(line[5:])
        except httpx.HTTPError as error:
            raise HubUnavailable(f"JupyterHub at {self.hub_url} stopped answering ({type(error).__name__}).") from None

    async def list_users(self, page_size: int = 200) -> list[dict[str, Any]]:
        """Every user, paging through the hub's list."""
        users: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = await self.request(
                "GET", f"users?offset={offset}&limit={page_size}", headers={"Accept": _PAGINATION}
            )
            items = page["items"] if isinstance(page, dict) else page
            users.extend(items)
            following = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
            if not following or not items:
                return users
            offset = int(following["offset"])


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
