"""TEST TOOL for `python -m bench scale`, never the product's default: a JupyterHub spawner whose
servers are all answered by one bench.loopback_server process (BINDER_LOOPBACK_URL).

Starting a server registers its prefix, token and activity URL there and returns the loopback
process's address, so the hub's own spawn check, its proxy route and its activity tracking are the
real ones; only the server's start costs nothing.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import httpx
from jupyterhub.spawner import Spawner
from traitlets import default

from bench.loopback_server import REGISTER_PATH

_client: httpx.AsyncClient | None = None


def _loopback() -> httpx.AsyncClient:
    global _client
    if _client is None:
        _client = httpx.AsyncClient(base_url=os.environ["BINDER_LOOPBACK_URL"], timeout=30)
    return _client


class LoopbackSpawner(Spawner):
    """A test tool: every server is a registration on the one loopback server process."""

    _started = False

    @default("apply_user_options")
    def _options_unused(self) -> Any:
        # The launch's Binder options are taken and unused; without this the hub warns on every spawn.
        return lambda spawner, user_options: None

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self._started:
            state["loopback"] = True
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._started = bool(state.get("loopback"))

    def clear_state(self) -> None:
        super().clear_state()
        self._started = False

    async def start(self) -> tuple[str, int]:
        env = self.get_env()
        prefix = env["JUPYTERHUB_SERVICE_PREFIX"]
        response = await _loopback().post(
            REGISTER_PATH,
            json={
                "user": self.user.name,
                "server": self.name,
                "prefix": prefix,
                "token": env["JUPYTERHUB_API_TOKEN"],
                "activity_url": env["JUPYTERHUB_ACTIVITY_URL"],
            },
        )
        response.raise_for_status()
        self._started = True
        address = urlsplit(os.environ["BINDER_LOOPBACK_URL"])
        return address.hostname or "127.0.0.1", int(address.port or 80)

    async def poll(self) -> int | None:
        return None if self._started else 0

    async def stop(self, now: bool = False) -> None:
        prefix = self.get_env()["JUPYTERHUB_SERVICE_PREFIX"]
        await _loopback().delete(REGISTER_PATH, params={"prefix": prefix})
        self._started = False
