"""The docker builder: one OCI image per repository in the local Docker Engine (BINDER_BUILDER=docker).

The Dockerfile (`dockerfile.make_dockerfile`) comes from the same detection as the local builder's plan,
with apt.txt honoured, on BINDER_DOCKER_BASE_IMAGE (an environment.yml's conda packages solved and installed
on the host, as the local builder does, and copied in); a repository's own Dockerfile is built as it is
(`repo_dockerfile`); an R repository gets Debian's R and its CRAN snapshot (`rlang`). Our Dockerfile's build steps carry
the label binder-actors.building=<build>, so a restarted scheduler finds their leftovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from binder_actors.builders import BuildFailed, Emit
from binder_actors.builders.conda import install_records, python_of, solve_environment
from binder_actors.builders.detect import CondaEnvironment, UnsupportedRepository
from binder_actors.builders.dockerfile import CONDA_CONTEXT, CONDA_PREFIX, VENV, make_dockerfile
from binder_actors.builders.fetch import fetch_checkout
from binder_actors.builders.plan_report import docker_plan
from binder_actors.builders.repo_dockerfile import (
    BuildSteps,
    build_args,
    finish_steps,
    forget_journals,
    has_singleuser,
    image_labels,
    journaled_steps,
    missing_singleuser,
    sweep_journals,
)
from binder_actors.builders.rlang import RPROFILE_CONTEXT, cran_url, rprofile_site
from binder_actors.builders.stack import attach_stack
from binder_actors.builders.steps import LOG_TAIL_LINES, within_build_timeout
from binder_actors.config import BinderConfig
from binder_actors.docker_engine import (
    BUILD_LABEL,
    BUILDING_LABEL,
    IMAGE_LABEL,
    REF_LABEL,
    REPO_LABEL,
    SETUP_HINT,
    SHARED_STEP,
    DockerUnavailable,
    engine_client,
)
from binder_actors.events import progress
from binder_actors.models import BuildRequest
from binder_actors.registries.oci import parse_image

log = logging.getLogger(__name__)

CLEANUP_SETTLE_SECONDS = 15.0
CLEANUP_SWEEP_PAUSE = 1.0

STOP_SECONDS = 30.0  # how long a stopped build's stream may take to end once its containers are killed
_END = object()
# The classic builder colours a step's stderr red with terminal escapes; events carry plain text.
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def registry_host(image: str) -> str:
    """The registry an image name starts with ("" for a name that only the local engine knows)."""
    try:
        return parse_image(image).host
    except ValueError:
        return ""


def push_failure(image: str, error: str, with_credentials: bool) -> str:
    """What a user reads when dockerd could not push: the engine's reason and what to check."""
    host = registry_host(image)
    if "unauthorized" in error or "no basic auth credentials" in error or "denied" in error:
        hint = (
            f"check BINDER_REGISTRY_USERNAME and BINDER_REGISTRY_PASSWORD for {host}"
            if with_credentials
            else f"{host} wants credentials: set BINDER_REGISTRY_USERNAME and BINDER_REGISTRY_PASSWORD"
        )
    else:
        hint = (
            f"check that dockerd reaches {host} (a registry over plain http outside 127.0.0.0/8 must be "
            "listed in dockerd's insecure-registries)"
        )
    return f"Pushing {image} failed: {error.strip()}; {hint}."


@dataclass
class _Stream:
    """Lines a blocking Docker call produces in a worker thread, handed to the event loop."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[object]
    stop: threading.Event

    def put(self, item: object) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class DockerBuildExecutor:
    """Builds images with the Docker Engine; an image exists once `docker build` has tagged it."""

    def __init__(self, config: BinderConfig, client_factory: Callable[[], Any] = engine_client) -> None:
        self.config = config
        self._client_factory = client_factory
        self._client: Any = None
        # What each running build's output said of its steps: a repository's Dockerfile labels none of them.
        self._steps: dict[str, BuildSteps] = {}

    @property
    def client(self) -> Any:
        # Made on first use, so that a scheduler starts (and says why builds fail) while dockerd is down.
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def cleanup_incomplete(self) -> list[str]:
        """Remove the step containers and half-built images of builds a dead scheduler left running."""
        try:
            client = self.client
        except DockerUnavailable as error:
            log.warning("cannot clean up interrupted docker builds: %s", error)
            return []
        removed: set[str] = set()
        # dockerd winds a killed build down by itself and may commit one more layer meanwhile:
        # sweep again until a sweep finds nothing (bounded).
        deadline = time.monotonic() + CLEANUP_SETTLE_SECONDS
        while True:
            found: set[str] = set()
            for container in client.containers.list(all=True, filters={"label": BUILDING_LABEL}):
                build = container.labels.get(BUILDING_LABEL)
                if build:  # session containers inherit the empty value of a finished image
                    with contextlib.suppress(NotFound, APIError):
                        container.remove(force=True)
                    found.add(build)
            found.update(self._remove_unfinished_images(client, build=None))
            found.update(sweep_journals(client, self.config.data_dir))  # repository Dockerfiles' layers
            removed |= found
            if not found or time.monotonic() > deadline:
                forget_journals(self.config.data_dir)
                return sorted(removed)
            time.sleep(CLEANUP_SWEEP_PAUSE)

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        try:
            client = await asyncio.to_thread(lambda: self.client)
        except DockerUnavailable as error:
            raise BuildFailed(str(error)) from None
        with tempfile.TemporaryDirectory(prefix="binder-docker-build-") as scratch:
            context = Path(scratch)
            try:
                await within_build_timeout(self._build_in(context, client, request, emit), self.config.build_timeout)
            except UnsupportedRepository as error:
                raise BuildFailed(str(error)) from None
            except BaseException:
                await asyncio.to_thread(self._kill_build_steps, client, request.build_name)
                raise
            finally:
                await asyncio.to_thread(self._remove_unfinished_images, client, request.build_name)
                steps = self._steps.pop(request.build_name, None)
                if steps is not None:
                    await asyncio.to_thread(finish_steps, client, steps)
        log.info("build done image=%s build=%s", request.image, request.build_name)

    async def _build_in(self, context: Path, client: Any, request: BuildRequest, emit: Emit) -> None:
        resolved = request.resolved
        repo_dir = context / "repo"
        await fetch_checkout(resolved, repo_dir, emit, self.config)
        labels = {
            IMAGE_LABEL: request.image,
            BUILD_LABEL: request.build_name,
            REPO_LABEL: resolved.repo_url,
            REF_LABEL: resolved.resolved_ref,
        }
        await self._docker_build(context, client, repo_dir, request, labels, emit)
        if registry_host(request.image):
            try:
                await self._push(client, request.image, emit)
            except BaseException:
                # An image that failed to publish is not built: left tagged, the engine registry
                # would launch it and the push would never be retried.
                await asyncio.to_thread(self._remove_image, client, request.image)
                raise

    async def _docker_build(
        self, context: Path, client: Any, repo_dir: Path, request: BuildRequest, labels: dict[str, str], emit: Emit
    ) -> None:
        base = self.config.docker.base_image
        plan = docker_plan(repo_dir, self.config)  # what `binder-actors plan` says, from the same call
        if plan.kind == "dockerfile":
            await self._repository_dockerfile(client, repo_dir, plan.config_dir / "Dockerfile", request, labels, emit)
            return
        try:
            await asyncio.to_thread(client.images.get, base)
        except ImageNotFound:
            raise BuildFailed(f"The base image {base} is not in the Docker Engine; {SETUP_HINT}.") from None
        if plan.conda is not None:
            await self._install_conda(plan.conda, context, emit)
        if plan.r is not None:
            url = cran_url(self.config.cran.url, plan.r.snapshot)
            (context / RPROFILE_CONTEXT).write_text(rprofile_site(url))
            await emit(progress("building", f"R packages from the CRAN snapshot of {plan.r.snapshot}: {url}"))
        (context / "Dockerfile").write_text(
            make_dockerfile(plan, repo_dir, base_image=base, build_name=request.build_name)
        )
        await emit(progress("building", f"Building {request.image} on {base}"))
        # The classic builder's API: its step containers carry the Dockerfile's labels, which is how
        # a timeout or a restart finds them (BuildKit's would not be visible at all).
        await self._engine_build(client, request, emit, BuildSteps("Dockerfile"), path=str(context), labels=labels)

    async def _repository_dockerfile(
        self, client: Any, repo_dir: Path, dockerfile: Path, request: BuildRequest, labels: dict[str, str], emit: Emit
    ) -> None:
        """As repo2docker's Dockerfile build pack builds it; the image must be able to run a hub's session."""
        name = dockerfile.relative_to(repo_dir).as_posix()
        steps = self._steps[request.build_name] = journaled_steps(self.config.data_dir, request.build_name, name)
        await emit(progress("building", f"Building {request.image} from {name}"))
        build = {"dockerfile": name, "buildargs": build_args(), "labels": image_labels(labels)}
        await self._engine_build(client, request, emit, steps, path=str(repo_dir), **build)
        if not await asyncio.to_thread(has_singleuser, client, request.image, request.build_name):
            # Left tagged, the engine registry would launch it and every launch would fail the same way.
            await asyncio.to_thread(self._remove_image, client, request.image)
            raise BuildFailed(missing_singleuser(name))

    async def _engine_build(
        self, client: Any, request: BuildRequest, emit: Emit, steps: BuildSteps, **build: Any
    ) -> None:
        """One classic-builder build tagged `request.image`, its output streamed as events; BuildFailed with
        its tail if the engine reports an error or tags nothing."""

        def chunks() -> Iterator[dict[str, Any]]:
            stream = client.api.build(tag=request.image, rm=True, forcerm=True, pull=False, decode=True, **build)
            try:
                yield from stream
            finally:
                stream.close()

        def stop() -> None:
            # Killing the running step's container ends the build at once, from the engine's side.
            self._kill_build_steps(client, request.build_name)

        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        async with contextlib.aclosing(_in_thread(chunks, stop)) as stream:
            async for chunk in stream:
                if "error" in chunk:
                    raise BuildFailed(steps.failure(str(chunk["error"])), list(tail))
                for line in _ANSI_RE.sub("", str(chunk.get("stream", ""))).splitlines():
                    steps.read(line)
                    if line.strip():
                        tail.append(line)
                        await emit(progress("building", line))
        try:
            await asyncio.to_thread(client.images.get, request.image)
        except ImageNotFound:
            raise BuildFailed("docker build ended without tagging the image.", list(tail)) from None

    async def _install_conda(self, conda: CondaEnvironment, context: Path, emit: Emit) -> None:
        """Solve and install the plan's conda environment as the local builder does (same solver, same
        package cache under BINDER_DATA_DIR/conda), into the build context, for the image's CONDA_PREFIX."""
        source = conda.source
        cache = self.config.data_dir / "conda"
        records = await solve_environment(conda, self.config.conda, cache, emit)
        environment = context / CONDA_CONTEXT
        await install_records(records, source, environment, cache, emit, runs_at=CONDA_PREFIX)
        attach_stack(environment, f"{VENV}/lib/python{python_of(records, source)}/site-packages")

    async def _push(self, client: Any, image: str, emit: Emit) -> None:
        """Push to the registry the name starts with; credentials (never logged) from BINDER_REGISTRY_*."""
        await emit(progress("pushing", f"Pushing {image}"))
        repository, _, tag = image.rpartition(":")
        auth = None
        if self.config.registry.username:
            auth = {
                "username": self.config.registry.username,
                "password": self.config.registry.password.get_secret_value(),
            }

        def chunks() -> Iterator[dict[str, Any]]:
            yield from client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)

        said: set[str] = set()
        async with contextlib.aclosing(_in_thread(chunks, lambda: None)) as stream:
            async for chunk in stream:
                if "error" in chunk:
                    raise BuildFailed(push_failure(image, str(chunk["error"]), bool(auth)))
                # Byte counts per layer would be thousands of events: one line per layer and state.
                status = f"{chunk.get('id', '')} {chunk.get('status', '')}".strip()
                if status and status not in said:
                    said.add(status)
                    await emit(progress("pushing", status))

    @staticmethod
    def _remove_image(client: Any, image: str) -> None:
        """Untag a finished image (deleting it when that was its last tag), keeping its parents: the
        build's own are then dangling, so `_remove_unfinished_images` takes them; shared layers stay."""
        with contextlib.suppress(DockerException):
            client.api.remove_image(image, noprune=True)

    def _kill_build_steps(self, client: Any, build_name: str) -> None:
        """Stop a build from the engine's side: its running step fails and the build ends. Its steps are
        found by label (our Dockerfile's) or as its output named them (a repository's Dockerfile)."""
        steps = self._steps.get(build_name)
        with contextlib.suppress(DockerException):
            labelled = client.containers.list(all=True, filters={"label": f"{BUILDING_LABEL}={build_name}"})
            for container in [c.id for c in labelled] + sorted(steps.containers if steps else ()):
                with contextlib.suppress(NotFound, APIError):
                    client.api.remove_container(container, force=True)

    @staticmethod
    def _remove_unfinished_images(client: Any, build: str | None) -> list[str]:
        """Untagged images of unfinished builds (`build`, or any when None), newest first, keeping shared layers.

        noprune: removing an image must not take its untagged parents with it, since the oldest of
        them are the shared stack layers every other image builds on.
        """
        removed: set[str] = set()
        for _ in range(100):  # one layer per pass; a Dockerfile has far fewer steps
            # The low-level listing carries the labels: no inspect per image, which races removals.
            dangling = client.api.images(filters={"dangling": True, "label": BUILDING_LABEL})
            doomed = {
                entry["Id"]: value
                for entry in dangling
                if (value := (entry.get("Labels") or {}).get(BUILDING_LABEL)) not in ("", SHARED_STEP, None)
                and (build is None or value == build)
            }
            if not doomed:
                break
            for image_id, value in doomed.items():
                with contextlib.suppress(NotFound, APIError):
                    client.api.remove_image(image_id, noprune=True)
                removed.add(value)
        return sorted(removed)


async def _in_thread(produce: Callable[[], Iterator[Any]], stop: Callable[[], None]) -> AsyncIterator[Any]:
    """Iterate a blocking generator in a worker thread; leaving early calls `stop` to end it promptly."""
    loop = asyncio.get_running_loop()
    stream = _Stream(loop, asyncio.Queue(), threading.Event())

    def work() -> None:
        try:
            for item in produce():
                stream.put(item)
                if stream.stop.is_set():
                    break
        except BaseException as error:  # handed to the loop, raised there
            stream.put(error)
        finally:
            stream.put(_END)

    worker = loop.run_in_executor(None, work)
    try:
        while (item := await stream.queue.get()) is not _END:
            if isinstance(item, DockerException):
                raise BuildFailed(f"The Docker Engine failed: {item}")
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not worker.done():
            stream.stop.set()
            # The thread reads on until the engine's next line; `stop` makes the engine send it now.
            await asyncio.to_thread(stop)
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(worker), STOP_SECONDS)
