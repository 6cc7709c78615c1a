"""The docker backend's test fixtures: dockerd with the base image (`engine`) and a second deployment on the
session's Ray whose builder is docker (`docker_stack`), plus helpers the docker test files share.

The docker stack's actors live in their own namespace, its hub is a second embedded hub using
DockerBinderSpawner, and its Serve application is mounted at /docker/ beside the default one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest
from pydantic import SecretStr
from ray import serve

from binder_actors.actors import ActorHandles, ensure_actors, kill_actors
from binder_actors.builders import BuildFailed
from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.config import PROJECT_DIR, BinderConfig
from binder_actors.docker_engine import BUILDING_LABEL
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest
from binder_actors.providers.base import ResolvedRef
from serve_app.embedded import EmbeddedHub, EmbeddedStack, free_port, hub_api_token, start_hub
from tests.conda_channel import ChannelServer
from tests.cran_repository import CranRepository, bridge_gateway
from tests.helpers import git_spec

SETUP_SCRIPT = PROJECT_DIR / "cluster" / "docker" / "setup-docker.sh"
NAMESPACE = "binder-docker"


@dataclass
class DockerStack:
    config: BinderConfig
    hub: EmbeddedHub
    actors: ActorHandles
    url: str


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """dockerd and binder-base:bookworm, set up by the same script CI runs; a clear failure if impossible."""
    if os.geteuid() == 0:
        setup = subprocess.run([str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=900)
        assert setup.returncode == 0, f"{SETUP_SCRIPT} failed:\n{setup.stdout}\n{setup.stderr}"
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        client.images.get("binder-base:bookworm")
    except docker.errors.DockerException as error:
        pytest.fail(f"The docker backend tests need dockerd and binder-base:bookworm: run {SETUP_SCRIPT} ({error})")
    return client


@pytest.fixture(scope="session")
def cran(engine: docker.DockerClient, tmp_path_factory) -> Iterator[CranRepository]:
    """The docker stack's CRAN (BINDER_CRAN_URL): R tests add the packages they need (test_docker_r.py)."""
    repository = CranRepository(tmp_path_factory.mktemp("cran"), bridge_gateway(engine))
    yield repository
    repository.stop()


@pytest.fixture(scope="session")
def docker_stack(
    stack: EmbeddedStack,
    engine: docker.DockerClient,
    tmp_path_factory,
    conda_channel: ChannelServer | None,
    cran: CranRepository,
) -> Iterator[DockerStack]:
    """A second deployment on the session's Ray: actors in their own namespace, a hub with DockerBinderSpawner."""
    data_dir = tmp_path_factory.mktemp("binder-docker-data")
    url = f"{stack.url}docker/"
    config = BinderConfig(
        data_dir=data_dir,
        port=stack.config.port,
        public_url=url,
        namespace=NAMESPACE,
        builder="docker",
        allow_local_repos=True,
        cull_every=3600,
        docker_mem_limit="1G",
        docker_cpu_limit=1.0,
        # Never the internet: conda-forge is the test channel (or nothing listening, without one).
        conda_channel_alias=conda_channel.url if conda_channel else f"http://127.0.0.1:{free_port()}/",
        cran_url=cran.url,  # never the internet: R packages from the test's CRAN
    )
    hub_dir = data_dir / "hub"
    hub_dir.mkdir(parents=True)
    token = hub_api_token(hub_dir)
    hub = start_hub(config, token)
    config = config.model_copy(update={"hub_url": hub.url, "hub_api_token": SecretStr(token)})
    from serve_app import build_app

    try:
        actors = ensure_actors(config)
        serve.run(build_app(config), name="binder-docker", route_prefix="/docker")
        yield DockerStack(config=config, hub=hub, actors=actors, url=url)
    finally:
        serve.delete("binder-docker")
        hub.stop_all_sessions(token)
        kill_actors(NAMESPACE)
        hub.stop()


def resolved_ref(repo_url: str, sha: str) -> ResolvedRef:
    return ResolvedRef(
        provider="git",
        spec=git_spec(repo_url, sha),
        repo_url=repo_url,
        unresolved_ref=sha,
        resolved_ref=sha,
        build_slug=repo_url,
        ref_url=repo_url,
        persistent_spec=git_spec(repo_url, sha),
    )


def build_leftovers(engine: docker.DockerClient, build_name: str) -> list[str]:
    """Step containers and untagged images a build of `build_name` left in the engine."""
    label = f"{BUILDING_LABEL}={build_name}"
    containers = [c.id for c in engine.containers.list(all=True, filters={"label": label})]
    images = [i["Id"] for i in engine.api.images(filters={"dangling": True, "label": label})]
    return containers + images


def build_collecting(
    executor: DockerBuildExecutor, request: BuildRequest
) -> tuple[list[BinderEvent], BaseException | None]:
    """Run one build to its end: every event it emitted, and the exception it ended with (None: built)."""
    events: list[BinderEvent] = []

    async def emit(event: BinderEvent) -> None:
        events.append(event)

    try:
        asyncio.run(executor.build(request, emit))
    except BuildFailed as error:
        return events, error
    return events, None
