"""TEST TOOL for `python -m bench scale`: the real control plane over servers that cost nothing.

Real Ray, the real actors and Serve ingress, a real JupyterHub with its own database and proxy,
a git daemon standing in for GitHub, and every session's server answered by the one loopback
process of bench/loopback_server.py through bench/loopback_spawner.py. The image launched is
recorded in the local store without a build (the loopback spawner never runs it), so every launch
is a cached one. `bare=True` starts only the hub (and the loopback server) for bench/scale_bare.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ray
from pydantic import SecretStr

from binder_actors.actors import ActorHandles, get_actors
from binder_actors.config import PROJECT_DIR, BinderConfig
from binder_actors.models import BuildRequest, ResolveRequest
from binder_actors.registries.local import LocalImage, LocalImageStore
from serve_app.embedded import EmbeddedHub, EmbeddedStack, free_port, hub_api_token, hub_environment, start_embedded
from tests.helpers import GitServer, git_spec, start_git_server

HUB_CONFIG = Path(__file__).with_name("loopback_hub_config.py")
LOOPBACK_START_SECONDS = 30.0


@dataclass
class LoopbackStack:
    """What one load run talks to; `stack` and `actors` are None for a bare hub."""

    work: Path
    git: GitServer
    loopback_url: str
    loopback: subprocess.Popen[bytes]
    hub: EmbeddedHub
    hub_token: str
    config: BinderConfig
    stack: EmbeddedStack | None
    actors: ActorHandles | None
    provider_spec: str

    @property
    def url(self) -> str:
        assert self.stack is not None
        return self.stack.url

    def loopback_status(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.loopback_url}/_loopback/sessions", timeout=30).json())


def _start_loopback(env: dict[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.loopback_server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + LOOPBACK_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("bench.loopback_server exited at start")
        try:
            httpx.get(f"{url}/_loopback/sessions", timeout=2).raise_for_status()
            return url, process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"bench.loopback_server did not answer within {LOOPBACK_START_SECONDS:g}s")


def _record_image(actors: ActorHandles, config: BinderConfig, provider_spec: str) -> None:
    """The launched image, recorded complete in the local store without a build."""
    provider, spec = provider_spec.split("/", 1)
    resolved = ray.get(actors.ref_resolver.resolve.remote(ResolveRequest(provider=provider, spec=spec)))
    image = BuildRequest.for_ref(resolved, config.registry.image_prefix).image
    store = LocalImageStore(config.images_dir)
    path = store.path_for(image)
    path.mkdir(parents=True)
    store.record(
        LocalImage(
            image=image,
            path=path,
            repo_url=resolved.repo_url,
            resolved_ref=resolved.resolved_ref,
            python_version="3.10",
            stack_dir=path,
        )
    )


@contextmanager
def loopback_stack(
    sessions: int, *, bare: bool = False, hub_log: Path | None = None, **settings: Any
) -> Iterator[LoopbackStack]:
    """The stack of one load run; `hub_log` keeps a copy of the hub's log (the rest goes with the run)."""
    work = Path(tempfile.mkdtemp(prefix="binder-bench-scale-"))
    git = start_git_server(work / "git")
    git.add("scale", {"requirements.txt": ""})
    provider_spec = f"git/{git_spec(git.url('scale'), 'main')}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")]))}
    loopback_url, loopback = _start_loopback(env)
    hub = None
    stack = None
    try:
        config = BinderConfig(
            data_dir=work / "data", port=free_port(), cull_every=3600, max_sessions=2 * sessions + 100, **settings
        )
        hub_dir = config.data_dir / "hub"
        hub_dir.mkdir(parents=True)
        token = hub_api_token(hub_dir)
        port = free_port()
        hub_env = {**env, **hub_environment(config, port, token), "BINDER_LOOPBACK_URL": loopback_url}
        hub = EmbeddedHub(
            url=f"http://127.0.0.1:{port}/", env=hub_env, log_path=hub_dir / "jupyterhub.log", config_file=HUB_CONFIG
        )
        hub.start()
        config = config.model_copy(update={"hub_url": hub.url, "hub_api_token": SecretStr(token)})
        actors = None
        if not bare:
            stack = start_embedded(config)
            actors = get_actors(config.namespace)
            _record_image(actors, config, provider_spec)
        yield LoopbackStack(work, git, loopback_url, loopback, hub, token, config, stack, actors, provider_spec)
    finally:
        # No session is stopped one by one: the hub, its database and the loopback server all go.
        try:
            if stack is not None:
                stack.stop()
        finally:
            if hub is not None:
                hub.stop()
                if hub_log is not None:
                    shutil.copyfile(hub.log_path, hub_log)
            loopback.kill()
            loopback.wait()
            git.stop()
            shutil.rmtree(work, ignore_errors=True)
