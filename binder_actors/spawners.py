"""Spawners for JupyterHub's config: BinderHub's spawner contract, and the local spawner.

BinderSpawnerMixin reads the launch's `user_options` (image, token, repo_url, ...) and puts the
Binder fields into the server's environment; each backend's spawner adds only how to run it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Unicode

from binder_actors.builders.local import server_environment, session_command
from binder_actors.registries.local import LocalImage, LocalImageStore

BINDER_ENV_FIELDS = {
    "BINDER_REPO_URL": "repo_url",
    "BINDER_REF_URL": "binder_ref_url",
    "BINDER_LAUNCH_HOST": "binder_launch_host",
    "BINDER_REQUEST": "binder_request",
    "BINDER_PERSISTENT_REQUEST": "binder_persistent_request",
}


class BinderSpawnerMixin:
    """BinderHub's contract: `user_options` must carry `image` and `token`."""

    user_options: dict[str, Any]

    def check_binder_options(self) -> None:
        missing = [key for key in ("image", "token") if not self.user_options.get(key)]
        if missing:
            raise web.HTTPError(400, f"user_options must include {' and '.join(missing)}")

    def binder_env(self) -> dict[str, str]:
        env = {var: str(self.user_options.get(key, "")) for var, key in BINDER_ENV_FIELDS.items()}
        # Binder links carry the session token in the URL (?token=...), as BinderHub's do.
        env["JUPYTERHUB_ALLOW_TOKEN_IN_URL"] = "1"
        return env


class LocalBinderSpawner(BinderSpawnerMixin, SimpleLocalProcessSpawner):
    """Runs `jupyterhub-singleuser` from a locally built environment, in a fresh copy of the repo."""

    image_store = Unicode(help="Folder of the local image store (BINDER_DATA_DIR/images).").tag(config=True)
    sessions_dir = Unicode(help="Folder under which each session gets its home.").tag(config=True)

    def _image(self) -> LocalImage:
        image = LocalImageStore(Path(self.image_store)).read(self.user_options["image"])
        if image is None:
            raise web.HTTPError(400, f"image {self.user_options['image']!r} is not built")
        return image

    @property
    def session_home(self) -> Path:
        server = self.name or "default"
        return Path(self.sessions_dir) / f"{self.user.name}-{server}"

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(server_environment(self._image(), self.session_home))
        env.update(self.binder_env())
        return env

    def get_args(self) -> list[str]:
        args = super().get_args()
        if os.geteuid() == 0:
            args.append("--allow-root")
        return args

    async def start(self) -> Any:
        self.check_binder_options()
        image = self._image()
        home = self.session_home
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(image.repo_dir, home, symlinks=True)
        self.home_dir = str(home)
        self.cmd = session_command(image, home, [str(image.env_dir / "bin" / "jupyterhub-singleuser")])
        return await super().start()

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        if self.user_options.get("image"):
            shutil.rmtree(self.session_home, ignore_errors=True)
