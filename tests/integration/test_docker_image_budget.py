"""BINDER_IMAGE_STORE_MAX_GB on Docker Engine images, with a real dockerd: images built by the docker builder
are sized by the layers only they hold (the base image and the shared stack layer are not counted), and the
budget's pass removes the least recently launched one no session runs, with its own layers.

The store is this test's images only (its own BINDER_IMAGE_PREFIX): other deployments' images in the same
engine are never candidates.
"""

from __future__ import annotations

import asyncio
import uuid

import docker
import pytest

from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.config import BinderConfig
from binder_actors.docker_engine import BUILDING_LABEL
from binder_actors.image_budget import LaunchRecords, prune
from binder_actors.models import BuildRequest
from binder_actors.registries.docker import DockerEngineRegistry
from tests.docker_stack import build_collecting, resolved_ref
from tests.helpers import GitServer

DATA_BYTES = 2_000_000


def test_docker_budget_removes_the_least_recently_launched_unused_image_and_its_own_layers_or_the_next(
    engine: docker.DockerClient, git_server: GitServer, tmp_path
) -> None:
    prefix = f"budget-{uuid.uuid4().hex[:8]}-"
    config = BinderConfig(builder="docker", data_dir=tmp_path, image_prefix=prefix, allow_local_repos=True)
    executor = DockerBuildExecutor(config)
    requests = {}
    for name in ("a", "b", "c"):
        repo = f"docker-budget-{name}"
        sha = git_server.add(repo, {"data.txt": name * DATA_BYTES})  # no packages: a quick build, 2 MB its own
        requests[name] = BuildRequest.for_ref(resolved_ref(git_server.url(repo), sha), prefix)
        events, error = build_collecting(executor, requests[name])
        assert error is None, (error, events[-3:])
    images = {name: request.image for name, request in requests.items()}
    store = DockerEngineRegistry(image_prefix=prefix)
    try:
        stored = {s.image: s for s in store.stored_images()}
        assert stored.keys() == set(images.values())  # this prefix's images, none of the engine's others
        base = engine.images.get(config.docker.base_image).attrs["Size"]
        for image in stored.values():
            assert DATA_BYTES <= image.size < base // 10, image  # its own layers: the base is not counted

        clock = [100.0]
        records = LaunchRecords(tmp_path / "launched", clock=lambda: clock[0])
        records.record(images["a"])  # a: launched first, still running
        clock[0] = 200.0
        records.record(images["b"])  # b: launched after a, stopped since; c: built after both, never launched
        budget = sum(s.size for s in stored.values()) + next(iter(stored.values())).size // 2

        planned = asyncio.run(prune(store, records, {images["a"]}, budget, dry_run=True))
        assert planned.removed == [images["b"]] and planned.freed_bytes == stored[images["b"]].size
        assert {s.image for s in store.stored_images()} == set(images.values())

        # A stopped container of b (a session's, not yet removed): the engine refuses to delete b, so c goes instead.
        container = engine.containers.create(images["b"], command="true")
        try:
            instead = asyncio.run(prune(store, records, {images["a"]}, budget))
        finally:
            container.remove(force=True)
        assert instead.removed == [images["c"]], instead
        assert {s.image for s in store.stored_images()} == {images["a"], images["b"]}

        own_layers = {"label": f"{BUILDING_LABEL}={requests['b'].build_name}"}
        assert engine.api.images(all=True, filters=own_layers), "b's build steps left layers of its own"
        done = asyncio.run(prune(store, records, {images["a"]}, 1))  # a 1-byte budget: all but a
        assert done.removed == [images["b"]]
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(images["b"])
        # Its own layers went with it; the base image and a stay.
        assert engine.api.images(all=True, filters=own_layers) == []
        engine.images.get(config.docker.base_image)
        assert {s.image for s in store.stored_images()} == {images["a"]}
        assert set(records.read()) == {images["a"]}
    finally:
        for image in images.values():
            store.remove_image(image)
