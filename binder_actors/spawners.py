"""Spawners for JupyterHub's config: BinderHub's spawner contract, and the local spawner.

BinderSpawnerMixin reads the launch's `user_options` (image, token, repo_url, ...), puts the Binder
fields into the server's environment and adds mybinder.org's in-session culling; each backend's
spawner adds only how to run the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections import deque
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Integer, Unicode
from traitlets.config import Configurable

from binder_actors.builders.local import server_environment, session_command
from binder_actors.registries.local import LocalImage, LocalImageStore

BINDER_ENV_FIELDS = {
    "BINDER_REPO_URL": "repo_url",
    "BINDER_REF_URL": "binder_ref_url",
    "BINDER_LAUNCH_HOST": "binder_launch_host",
    "BINDER_REQUEST": "binder_request",
    "BINDER_PERSISTENT_REQUEST": "binder_persistent_request",
}
LOG_TAIL_LINES = 30


class BinderSpawnerMixin(Configurable):
    """BinderHub's contract: `user_options` must carry `image` and `token`.

    A Configurable, so that its settings are traits any Spawner subclass can be configured with.
    """

    user_options: dict[str, Any]

    shutdown_no_activity_timeout = Integer(
        600, help="Seconds without activity after which the server shuts itself down (0: never)."
    ).tag(config=True)
    kernel_idle_timeout = Integer(600, help="Seconds after which an idle kernel is culled (0: never).").tag(config=True)

    def check_binder_options(self) -> None:
        missing = [key for key in ("image", "token") if not self.user_options.get(key)]
        if missing:
            raise web.HTTPError(400, f"user_options must include {' and '.join(missing)}")

    def binder_env(self) -> dict[str, str]:
        env = {var: str(self.user_options.get(key, "")) for var, key in BINDER_ENV_FIELDS.items()}
        # Binder links carry the session token in the URL (?token=...), as BinderHub's do.
        env["JUPYTERHUB_ALLOW_TOKEN_IN_URL"] = "1"
        return env

    # Cooperative overrides: the mixin comes first in each spawner's bases, so these wrap the spawner's own.
    def get_env(self) -> dict[str, str]:
        env = super().get_env()  # type: ignore[misc]
        env.update(self.binder_env())
        return env

    def get_args(self) -> list[str]:
        return super().get_args() + self.binder_args()  # type: ignore[misc]

    async def start(self) -> Any:
        self.check_binder_options()
        return await super().start()  # type: ignore[misc]

    def binder_args(self) -> list[str]:
        """In-session culling, as mybinder.org configures it."""
        args = []
        if self.shutdown_no_activity_timeout:
            args.append(f"--ServerApp.shutdown_no_activity_timeout={self.shutdown_no_activity_timeout}")
        if self.kernel_idle_timeout:
            args += [
                f"--MappingKernelManager.cull_idle_timeout={self.kernel_idle_timeout}",
                "--MappingKernelManager.cull_interval=60",
                "--MappingKernelManager.cull_connected=True",
            ]
        return args


class LocalSessionSpawner(SimpleLocalProcessSpawner):
    """Runs `jupyterhub-singleuser` from a locally built environment, in a fresh copy of the repo.

    It expects checked Binder options: LocalBinderSpawner puts BinderSpawnerMixin's check before it.
    """

    image_store = Unicode(help="Folder of the local image store (BINDER_DATA_DIR/images).").tag(config=True)
    sessions_dir = Unicode(help="Folder under which each session gets its home and its log.").tag(config=True)

    def _image(self) -> LocalImage:
        image = LocalImageStore(Path(self.image_store)).read(self.user_options["image"])
        if image is None:
            raise web.HTTPError(400, f"image {self.user_options['image']!r} is not built")
        return image

    @property
    def session_home(self) -> Path:
        server = self.name or "default"
        return Path(self.sessions_dir) / f"{self.user.name}-{server}"

    @property
    def session_log(self) -> Path:
        return self.session_home.with_name(self.session_home.name + ".log")

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(server_environment(self._image(), self.session_home))
        return env

    def get_args(self) -> list[str]:
        args = super().get_args()
        if os.geteuid() == 0:
            args.append("--allow-root")
        return args

    async def start(self) -> Any:
        image = self._image()
        home = self.session_home
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(image.repo_dir, home, symlinks=True)
        self.home_dir = str(home)
        self.cmd = session_command(image, home, [str(image.env_dir / "bin" / "jupyterhub-singleuser")])
        with open(self.session_log, "wb") as log:
            self.popen_kwargs = {"stdout": log, "stderr": log}
            ip, port = await super().start()
        self.session_pid_file.write_text(str(self.pid))
        await self._until_listening(ip, port)
        return ip, port

    @property
    def session_pid_file(self) -> Path:
        return self.session_home.with_name(self.session_home.name + ".pid")

    async def poll(self) -> int | None:
        if not self.pid:
            self._end_unrecorded_server()
        return await super().poll()

    def _end_unrecorded_server(self) -> None:
        """End the server of a spawn the hub did not live to record (it died or was killed mid-spawn).

        The hub restarts without this server's pid and takes the server as stopped; without this
        its process would run on, unknown to anyone. The pid file tells it, checked against the
        process's own JUPYTERHUB_USER and JUPYTERHUB_SERVER_NAME so no other process is touched.
        """
        try:
            pid = int(self.session_pid_file.read_text())
            environ = set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
        except (OSError, ValueError):  # no process was started, or it is gone
            pid, environ = 0, set()
        ours = {f"JUPYTERHUB_USER={self.user.name}".encode(), f"JUPYTERHUB_SERVER_NAME={self.name}".encode()}
        if pid and ours <= environ:
            self.log.warning("ending server pid=%s of %s: its spawn was never recorded by the hub", pid, self.user.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self._remove_session_files()  # the home of a spawn cut short before its process started too

    async def _until_listening(self, ip: str, port: int) -> None:
        """Return once the server accepts connections; fail at once, with its log, if it exits."""
        while True:
            status = self.proc.poll() if self.proc is not None else None
            if status is not None:
                died = RuntimeError(
                    f"The server exited with status {status} while starting. Its last lines:\n{self._log_tail()}"
                )
                died.jupyterhub_message = str(died)  # the hub's API answers with this message
                # The hub does not call stop() for a process that already exited: clean up here.
                self._remove_session_files()
                raise died
            try:  # asyncio's connect: the hub's event loop keeps serving other spawns meanwhile
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=1)
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    def _log_tail(self) -> str:
        try:
            with open(self.session_log, errors="replace") as log:
                return "".join(deque(log, maxlen=LOG_TAIL_LINES))
        except OSError:
            return "(no log)"

    def _remove_session_files(self) -> None:
        shutil.rmtree(self.session_home, ignore_errors=True)
        self.session_log.unlink(missing_ok=True)
        self.session_pid_file.unlink(missing_ok=True)

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        if self.user_options.get("image"):
            self._remove_session_files()


def end_unrecorded_sessions(sessions_dir: Path, db_file: Path) -> list[int]:
    """At hub start: end the local servers whose spawn the previous hub never recorded (it died mid-spawn).

    Every server process leaves a pid file in `sessions_dir`; the hub's database records the pid of
    every server it knows (its spawner's state). A live process of a pid file whose pid the database
    does not hold, and whose environment names a hub user (so it is a server of ours), would run on
    unknown to anyone: the hub would never poll, stop or cull it. Returns the pids ended.
    """
    import json
    import sqlite3

    if not sessions_dir.is_dir() or not db_file.is_file():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT state FROM spawners WHERE server_id IS NOT NULL").fetchall()
    recorded = {json.loads(state or "{}").get("pid") for (state,) in rows}
    ended = []
    for pid_file in sessions_dir.glob("*.pid"):
        try:
            pid = int(pid_file.read_text())
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if pid not in recorded and any(item.startswith(b"JUPYTERHUB_USER=") for item in environ):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            ended.append(pid)
    return ended


class LocalBinderSpawner(BinderSpawnerMixin, LocalSessionSpawner):
    """The embedded default's spawner: the Binder contract, checked once, then a local session."""


def _kube_binder_spawner() -> type:
    """KubeSpawner with the Binder contract; kubespawner is imported only where JupyterHub runs on Kubernetes."""
    from kubespawner import KubeSpawner
    from traitlets import default

    class KubeBinderSpawner(BinderSpawnerMixin, KubeSpawner):
        """Runs the built image in a pod: the image comes from the launch's `user_options`, not a profile."""

        @default("cmd")
        def _singleuser(self) -> list[str]:
            # KubeSpawner's default (None) runs the image's own CMD and drops get_args(), and with
            # them the Binder culling arguments; repo2docker images' CMD is not a hub server either.
            return ["jupyterhub-singleuser"]

        async def start(self) -> Any:
            self.image = self.user_options.get("image", "")
            return await super().start()

    KubeBinderSpawner.__module__ = __name__
    KubeBinderSpawner.__qualname__ = "KubeBinderSpawner"
    return KubeBinderSpawner


def __getattr__(name: str) -> Any:
    # JupyterHub resolves "binder_actors.spawners.KubeBinderSpawner" with getattr, which lands here.
    if name == "KubeBinderSpawner":
        spawner = _kube_binder_spawner()
        globals()[name] = spawner
        return spawner
    if name == "DockerBinderSpawner":
        spawner = _docker_binder_spawner()
        globals()[name] = spawner
        return spawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _docker_binder_spawner() -> type:
    """DockerSpawner with the Binder contract; dockerspawner is imported only where sessions run in containers."""
    from dockerspawner import DockerSpawner
    from traitlets import default

    class DockerBinderSpawner(BinderSpawnerMixin, DockerSpawner):
        """Runs the built image in a container on the sessions' network; the container goes when the server stops."""

        @default("allowed_images")
        def _any_image(self) -> str:
            # Only the binder service can start servers (temporary users cannot log in), and it
            # starts the image it built: the image comes from `user_options`, not a list.
            return "*"

        @default("cmd")
        def _singleuser(self) -> list[str]:
            # As BinderHub's hub: whatever the image's CMD (a repository's Dockerfile may start a
            # notebook server of its own), the session is jupyterhub-singleuser, run by its ENTRYPOINT.
            return ["jupyterhub-singleuser"]

        @default("remove")
        def _remove_stopped(self) -> bool:
            return True  # a stopped (culled) session leaves no container behind

        @default("prefix")
        def _container_prefix(self) -> str:
            return "binder-session"

        @default("env_keep")
        def _no_host_environment(self) -> list[str]:
            return []  # the host's PATH is not the image's

        @default("extra_create_kwargs")
        def _session_label(self) -> dict[str, Any]:
            return {"labels": {"binder-actors.session": "{raw_username}"}}

        @default("extra_host_config")
        def _keep_until_stopped(self) -> dict[str, Any]:
            # Not auto-removed: a server that dies while starting keeps its log until we read it;
            # stop() removes the container (remove=True) either way.
            return {"auto_remove": False}

        async def get_ip_and_port(self) -> tuple[str, int]:
            container = await self.get_object()
            if container is None or not container["State"]["Running"]:
                logs = await self.docker("logs", self.container_id, tail=LOG_TAIL_LINES) if container else b""
                with contextlib.suppress(Exception):  # already gone
                    await self.remove_object()
                status = container["State"]["ExitCode"] if container else "unknown"
                died = RuntimeError(
                    f"The server exited with status {status} while starting. Its last lines:\n"
                    + logs.decode(errors="replace")
                )
                died.jupyterhub_message = str(died)  # the hub's API answers with this message
                raise died
            return await super().get_ip_and_port()

    DockerBinderSpawner.__module__ = __name__
    DockerBinderSpawner.__qualname__ = "DockerBinderSpawner"
    return DockerBinderSpawner
