"""The embedded default on one machine: a real JupyterHub subprocess, a local Ray, the actors, Serve.

`make serve` and the integration tests start the whole stack through `start_embedded`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import ray
from pydantic import SecretStr
from ray import serve

from binder_actors.actors import ensure_actors, kill_actors
from binder_actors.config import EMBEDDED_HUB_CONFIG, PROJECT_DIR, BinderConfig, config_environment
from binder_actors.hub import HubClient, HubError
from binder_actors.owned_sessions import binder_users

log = logging.getLogger(__name__)

HUB_START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def proxy_command() -> str:
    local = PROJECT_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    found = str(local) if local.exists() else shutil.which("configurable-http-proxy")
    if not found:
        raise RuntimeError(
            "configurable-http-proxy is not installed: run `npm install` in the project folder "
            "(`make serve` does it for you)."
        )
    return found


def hub_api_token(hub_dir: Path) -> str:
    """The binder service's hub token, made once and kept (mode 0600) so restarts agree on it."""
    path = hub_dir / "api_token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


@dataclass
class EmbeddedHub:
    """The hub subprocess; servers outlive it (cleanup_servers is off), so it can be restarted."""

    url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    config_file: Path = EMBEDDED_HUB_CONFIG  # the load harness (bench/scale.py) gives its own, which loads this

    def start(self) -> None:
        with open(self.log_path, "ab") as hub_log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(self.config_file)],
                cwd=self.log_path.parent,
                env=self.env,
                stdout=hub_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + HUB_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError("JupyterHub exited at start:\n" + "\n".join(tail))
            try:
                if httpx.get(self.url + "hub/api/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"JupyterHub did not answer within {HUB_START_SECONDS:g}s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the hub stops its proxy and exits; the servers keep running."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def stop_all_sessions(self, token: str, concurrency: int = 10, logged_in_host: str = "") -> None:
        """Remove every temporary user binder-actors made, its servers stopped first (what Ctrl-C of serve does).

        With `logged_in_host` (authenticated mode: the deployment's launch host), the Binder servers it
        started for logged-in users are stopped and removed too; those users stay.
        Runs at shutdown, from synchronous code: one event loop of its own for the hub client.
        """

        async def remove_all() -> None:
            hub = HubClient(self.url, token)
            slots = asyncio.Semaphore(concurrency)

            async def remove(name: str) -> None:
                async with slots:
                    try:
                        await hub.remove_user(name)
                    except HubError as error:
                        log.warning("could not remove user=%s at shutdown: %s", name, error)

            async def remove_server(user: str, server: str) -> None:
                async with slots:
                    try:
                        await hub.remove_server(user, server)
                    except HubError as error:
                        log.warning("could not stop user=%s server=%s at shutdown: %s", user, server, error)

            try:
                users = await hub.list_users()
                managed = [remove(user.name) for user in users if user.managed and not user.admin]
                owned = binder_users(users, logged_in_host, logged_in=True) if logged_in_host else []
                servers = [
                    remove_server(user.name, name) for user in owned if not user.managed for name in user.servers
                ]
                await asyncio.gather(*managed, *servers)
            except HubError as error:  # the hub is gone: its servers stop with it, the rest shuts down
                log.warning("could not list the sessions to remove at shutdown: %s", error)
            finally:
                await hub.aclose()

        asyncio.run(remove_all())


def docker_hub_environment(config: BinderConfig) -> dict[str, str]:
    """The address the hub listens on for sessions in containers (BINDER_BUILDER=docker): their network's gateway."""
    from binder_actors.docker_engine import engine_client, ensure_network

    return {"BINDER_HUB_IP": ensure_network(engine_client(), config.docker.network)}


def hub_environment(config: BinderConfig, port: int, token: str) -> dict[str, str]:
    """What the embedded hub's config reads: BinderConfig's own variables, and the BINDER_HUB_* ones it
    cannot know (the ports picked now, the proxy's path, the service's token)."""
    # A secret config_environment leaves out: the embedded hub's authenticator checks it (authenticated mode).
    password = config.auth.shared_password.get_secret_value()
    return {
        **({"BINDER_AUTH_SHARED_PASSWORD": password} if password else {}),
        **config_environment(config),
        "BINDER_HUB_PORT": str(port),
        "BINDER_HUB_API_PORT": str(free_port()),
        "BINDER_HUB_PROXY_API_PORT": str(free_port()),
        "BINDER_HUB_PROXY_COMMAND": proxy_command(),
        "BINDER_HUB_API_TOKEN": token,
        "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
    }


def start_hub(config: BinderConfig, token: str) -> EmbeddedHub:
    hub_dir = config.data_dir / "hub"
    hub_dir.mkdir(parents=True, exist_ok=True)
    port = config.hub_port or free_port()
    env = {**os.environ, **hub_environment(config, port, token)}
    if config.builder == "docker":
        env.update(docker_hub_environment(config))
    hub = EmbeddedHub(url=f"http://127.0.0.1:{port}/", env=env, log_path=hub_dir / "jupyterhub.log")
    hub.start()
    return hub


@dataclass
class EmbeddedStack:
    config: BinderConfig
    hub: EmbeddedHub | None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}{self.config.base_path}"

    def stop(self) -> None:
        """Stop Serve, the sessions, the actors, the hub (with its proxy) and the local Ray."""
        try:
            serve.shutdown()
            if self.hub:
                logged_in_host = self.config.launch_host if self.config.auth.enabled else ""
                self.hub.stop_all_sessions(self.config.hub_api_token.get_secret_value(), logged_in_host=logged_in_host)
            kill_actors(self.config.namespace)
        finally:
            if self.hub:
                self.hub.stop()
            ray.shutdown()


def start_embedded(config: BinderConfig) -> EmbeddedStack:
    from serve_app import build_app
    from serve_app.paths import route_prefix

    config.data_dir.mkdir(parents=True, exist_ok=True)
    hub = None
    if not config.hub_url:
        hub_dir = config.data_dir / "hub"
        hub_dir.mkdir(parents=True, exist_ok=True)
        token = hub_api_token(hub_dir)
        hub = start_hub(config, token)
        config = config.model_copy(update={"hub_url": hub.url, "hub_api_token": SecretStr(token)})
    try:
        if not ray.is_initialized():
            ray.init(
                address=config.ray_address or None,
                namespace=config.namespace,
                num_cpus=None if config.ray_address else config.ray_num_cpus,
                include_dashboard=False,
                log_to_driver=False,
            )
        ensure_actors(config)
        serve.start(http_options={"host": config.host, "port": config.port})
        serve.run(build_app(config), name="binder", route_prefix=route_prefix(config.base_path))
    except BaseException:
        if hub:
            hub.stop()
        raise
    return EmbeddedStack(config=config, hub=hub)
