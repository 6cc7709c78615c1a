"""BINDER_BUILDER=docker against a real dockerd: images built from apt.txt and requirements.txt, sessions in containers,
images pushed to a real registry (Debian's docker-registry on 127.0.0.1, which dockerd may use over plain http).

The docker stack shares the session's Ray and Serve (one Ray per test session): its actors live in
their own namespace, its hub is a second embedded hub using DockerBinderSpawner, and its Serve
application is mounted at /docker/ beside the default one.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import ray
from pydantic import SecretStr
from ray import serve

from binder_actors.actors import ActorHandles, ensure_actors, kill_actors
from binder_actors.builders import BuildFailed
from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.config import PROJECT_DIR, BinderConfig
from binder_actors.docker_engine import BUILDING_LABEL
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest
from binder_actors.providers import resolve_once
from binder_actors.providers.base import ResolvedRef
from binder_actors.registries.oci import OCIRegistry, RegistryAuthError
from serve_app.embedded import EmbeddedHub, EmbeddedStack, hub_api_token, start_hub
from tests.helpers import GitServer, git_spec, read_events, run_in_kernel, wait_for
from tests.integration.test_record_launches import provider_settings
from tests.registry import RunningRegistry, start_registry, write_htpasswd
from tests.upstreams import UpstreamServer, zip_bytes

SETUP_SCRIPT = PROJECT_DIR / "cluster" / "docker" / "setup-docker.sh"
NAMESPACE = "binder-docker"
APT_REPO = {
    "apt.txt": "# a small Debian package the base image lacks\njq\n",
    "requirements.txt": "tabulate==0.9.0\n",
    "postBuild": "#!/bin/bash\nset -e\necho built-by-postBuild > ~/.postbuild-marker\n",
}
PUSH_USER = "binder-pusher"
PUSH_PASSWORD = "push-password-never-shown"


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
def docker_stack(stack: EmbeddedStack, engine: docker.DockerClient, tmp_path_factory) -> Iterator[DockerStack]:
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


def session_containers(engine: docker.DockerClient, user: str) -> list:
    return engine.containers.list(all=True, filters={"label": f"binder-actors.session={user}"})


def build_leftovers(engine: docker.DockerClient, build_name: str) -> list[str]:
    """Step containers and untagged images a build of `build_name` left in the engine."""
    label = f"{BUILDING_LABEL}={build_name}"
    containers = [c.id for c in engine.containers.list(all=True, filters={"label": label})]
    images = [i["Id"] for i in engine.api.images(filters={"dangling": True, "label": label})]
    return containers + images


def test_apt_and_requirements_repository_runs_in_an_isolated_container(docker_stack, git_server: GitServer, engine):
    sha = git_server.add("docker-apt-repo", APT_REPO)
    repo_url = git_server.url("docker-apt-repo")
    events = read_events(docker_stack.url, f"build/git/{git_spec(repo_url, 'main')}")
    ready = events[-1]
    assert ready["phase"] == "ready", events[-3:]
    assert any("jq" in e.get("message", "") for e in events if e["phase"] == "building")
    assert engine.images.get(ready["image"]).labels["binder-actors.ref"] == sha

    code = textwrap.dedent(
        """
        import os, subprocess, tabulate
        jq = subprocess.run(["jq", "--version"], capture_output=True, text=True).stdout.strip()
        marker = open(os.path.expanduser("~/.postbuild-marker")).read().strip()
        print(tabulate.__version__, jq, os.getcwd(), os.getuid(), marker, os.path.exists("/work"))
        """
    )
    version, jq, cwd, uid, marker, sees_host = run_in_kernel(ready["url"], ready["token"], code).split()
    assert (version, cwd, uid, marker) == ("0.9.0", "/home/jovyan", "1000", "built-by-postBuild")
    assert jq.startswith("jq-")
    assert sees_host == "False"  # a container: the host's folders are not there

    user = ready["url"].rstrip("/").rsplit("/", 1)[-1]
    (container,) = session_containers(engine, user)
    limits = container.attrs["HostConfig"]
    assert limits["Memory"] == 1024**3 and limits["CpuQuota"] == limits["CpuPeriod"]
    assert container.attrs["NetworkSettings"]["Networks"].keys() == {docker_stack.config.docker.network}


def test_simultaneous_first_launches_share_one_docker_build(docker_stack, git_server: GitServer):
    git_server.add("docker-shared", {"requirements.txt": "tabulate==0.9.0\n"})
    path = f"build/git/{git_spec(git_server.url('docker-shared'), 'main')}"
    before = ray.get(docker_stack.actors.build_scheduler.stats.remote()).builds_started
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: read_events(docker_stack.url, path), range(2)))
    assert [r[-1]["phase"] for r in results] == ["ready", "ready"], [r[-1] for r in results]
    assert ray.get(docker_stack.actors.build_scheduler.stats.remote()).builds_started == before + 1


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"requirements.txt": "binder-actors-no-such-package==1.0\n"},
            ["docker build failed", "binder-actors-no-such-package"],
        ),
        ({"apt.txt": "no-such-debian-package-binder\n"}, ["docker build failed", "no-such-debian-package-binder"]),
        ({"runtime.txt": "python-3.9\n"}, ["asks for Python 3.9", "binder-base:bookworm has Python 3.11"]),
        ({"environment.yml": "dependencies:\n  - numpy\n"}, ["conda packages (numpy)", "the docker builder"]),
    ],
    ids=["missing-pip-package", "missing-apt-package", "python-the-base-lacks", "conda"],
)
def test_failed_build_says_why_and_leaves_nothing(docker_stack, git_server, engine, files, expected, request):
    name = f"docker-fails-{request.node.callspec.id}"
    sha = git_server.add(name, files)
    events = read_events(docker_stack.url, f"build/git/{git_spec(git_server.url(name), 'main')}")
    assert events[-1]["phase"] == "failed"
    for fragment in expected:
        assert fragment in events[-1]["message"], events[-1]["message"]
    build = BuildRequest.for_ref(resolved_ref(git_server.url(name), sha))
    assert build_leftovers(engine, build.build_name) == []
    assert not engine.images.list(name=build.image)


def test_culled_session_container_is_removed(docker_stack, git_server: GitServer, engine):
    git_server.add("docker-culled", APT_REPO)
    ready = read_events(docker_stack.url, f"build/git/{git_spec(git_server.url('docker-culled'), 'main')}")[-1]
    assert ready["phase"] == "ready", ready
    user = ready["url"].rstrip("/").rsplit("/", 1)[-1]
    assert [c.status for c in session_containers(engine, user)] == ["running"]

    def culled() -> bool:
        report = ray.get(docker_stack.actors.activity_monitor.cull_once.remote(timeout=1))
        return user in report.culled

    wait_for(culled, 60, "the idle session to be culled", interval=0.5)
    wait_for(lambda: not session_containers(engine, user), 30, "the culled session's container to be removed")


def test_build_timeout_stops_the_build_and_its_container(engine, git_server: GitServer):
    sha = git_server.add("docker-slow", {"postBuild": "#!/bin/bash\necho started-sleeping\nsleep 600\n"})
    request = BuildRequest.for_ref(resolved_ref(git_server.url("docker-slow"), sha))
    executor = DockerBuildExecutor(BinderConfig(builder="docker", build_timeout=20))

    async def emit(event: BinderEvent) -> None:
        pass

    with pytest.raises(BuildFailed, match="BINDER_BUILD_TIMEOUT=20s"):
        asyncio.run(executor.build(request, emit))
    assert build_leftovers(engine, request.build_name) == []


INTERRUPTED_BUILD = """
import asyncio, sys
from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.config import BinderConfig
from binder_actors.models import BuildRequest

async def emit(event):
    print(event.message, end="", flush=True)

request = BuildRequest.model_validate_json(sys.argv[1])
asyncio.run(DockerBuildExecutor(BinderConfig(builder="docker")).build(request, emit))
"""


def test_restart_removes_what_an_interrupted_build_left(engine, git_server: GitServer):
    sha = git_server.add("docker-interrupted", {"postBuild": "#!/bin/bash\necho started-sleeping\nsleep 600\n"})
    request = BuildRequest.for_ref(resolved_ref(git_server.url("docker-interrupted"), sha))
    # The build runs in a process of its own, as in a BuildScheduler, and dies with it.
    builder = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_BUILD, request.model_dump_json()],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: engine.containers.list(filters={"label": f"{BUILDING_LABEL}={request.build_name}"}),
            300,
            "the postBuild step's container to run",
        )
    finally:
        os.killpg(builder.pid, signal.SIGKILL)
        builder.wait()
    assert build_leftovers(engine, request.build_name), "the killed build left nothing to clean up"

    removed = DockerBuildExecutor(BinderConfig(builder="docker")).cleanup_incomplete()
    assert request.build_name in removed
    assert build_leftovers(engine, request.build_name) == []
    assert not engine.images.list(name=request.image)


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    registry = start_registry(tmp_path_factory.mktemp("docker-push-open"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    root = tmp_path_factory.mktemp("docker-push-htpasswd")
    htpasswd = write_htpasswd(root / "htpasswd", PUSH_USER, PUSH_PASSWORD)
    registry = start_registry(root, {"htpasswd": {"realm": "binder-push-tests", "path": str(htpasswd)}})
    yield registry
    registry.stop()


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


def registry_has(registry: RunningRegistry, image: str, username: str = "", password: str = "") -> bool:
    """Our OCI registry client's answer for `image` (its name starts with the registry's host)."""

    async def ask() -> bool:
        client = OCIRegistry(registry.url, username=username, password=password)
        try:
            return await client.exists(image)
        finally:
            await client.aclose()

    return asyncio.run(ask())


def secret_forms(password: str) -> list[str]:
    """The password as it could leak: plain, or inside the base64 of a Basic header or a docker auth header."""
    return [
        password,
        base64.b64encode(f"{PUSH_USER}:{password}".encode()).decode(),
        base64.b64encode(password.encode()).decode(),
    ]


def leaks(password: str, events: list[BinderEvent], logs: pytest.LogCaptureFixture, *more: str) -> list[str]:
    texts = [event.message for event in events] + [record.getMessage() for record in logs.records] + list(more)
    return [text for text in texts if any(form in text for form in secret_forms(password))]


@pytest.mark.parametrize("access", ["anonymous", "htpasswd"])
def test_built_image_is_pushed_to_the_registry_its_name_starts_with(
    request, access, engine, git_server: GitServer, all_logs
):
    registry: RunningRegistry = request.getfixturevalue(f"{'open' if access == 'anonymous' else 'htpasswd'}_registry")
    credentials = {"registry_username": PUSH_USER, "registry_password": SecretStr(PUSH_PASSWORD)}
    config = BinderConfig(
        builder="docker", image_prefix=f"{registry.host}/binder-", **(credentials if access == "htpasswd" else {})
    )
    name = f"docker-pushed-{access}"
    sha = git_server.add(name, {"requirements.txt": "tabulate==0.9.0\n"})
    build = BuildRequest.for_ref(resolved_ref(git_server.url(name), sha), config.registry.image_prefix)
    assert build.image.startswith(f"{registry.host}/binder-")

    events, error = build_collecting(DockerBuildExecutor(config), build)
    assert error is None, f"{error} {getattr(error, 'log_tail', [])[-5:]}"
    phases = [event.phase for event in events]
    # As BinderHub: the build log, then the push, and nothing after it (BuildScheduler says `built`).
    assert "pushing" in phases and phases.index("pushing") > max(i for i, p in enumerate(phases) if p == "building")
    assert set(phases[phases.index("pushing") :]) == {"pushing"}
    assert any("digest: sha256:" in event.message for event in events if event.phase == "pushing")

    if access == "htpasswd":
        assert registry_has(registry, build.image, PUSH_USER, PUSH_PASSWORD)
        with pytest.raises(RegistryAuthError):  # the push did need the credentials
            registry_has(registry, build.image)
        assert leaks(PUSH_PASSWORD, events, all_logs, registry.log_tail()) == []
    else:
        assert registry_has(registry, build.image)


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("", ["no basic auth credentials", "wants credentials: set BINDER_REGISTRY_USERNAME"]),
        ("not-the-push-password", ["unauthorized", "check BINDER_REGISTRY_USERNAME and BINDER_REGISTRY_PASSWORD"]),
    ],
    ids=["no-credentials", "wrong-password"],
)
def test_refused_push_fails_the_build_says_why_and_leaves_no_image(
    request, password, expected, htpasswd_registry: RunningRegistry, engine, git_server: GitServer, all_logs
):
    credentials = {"registry_username": PUSH_USER, "registry_password": SecretStr(password)} if password else {}
    config = BinderConfig(builder="docker", image_prefix=f"{htpasswd_registry.host}/binder-", **credentials)
    name = f"docker-refused-{request.node.callspec.id}"
    sha = git_server.add(name, {"requirements.txt": "tabulate==0.9.0\n"})
    build = BuildRequest.for_ref(resolved_ref(git_server.url(name), sha), config.registry.image_prefix)

    events, error = build_collecting(DockerBuildExecutor(config), build)
    assert error is not None, "the push to a registry that refuses us succeeded"
    message = str(error)
    assert message.startswith(f"Pushing {build.image} failed"), message
    for fragment in expected:
        assert fragment in message, message
    assert "pushing" in [event.phase for event in events]
    # Not left tagged: the engine registry would launch it and the push would never be retried.
    assert not engine.images.list(name=build.image)
    assert build_leftovers(engine, build.build_name) == []
    assert not registry_has(htpasswd_registry, build.image, PUSH_USER, PUSH_PASSWORD)
    if password:
        assert leaks(password, events, all_logs, message) == []


def test_repo2docker_mode_without_repo2docker_fails_saying_what_to_do(engine, git_server: GitServer, monkeypatch):
    # Whatever this machine has: a PATH without jupyter-repo2docker, as on a Docker host that lacks it.
    path = [
        folder for folder in os.environ["PATH"].split(os.pathsep) if not Path(folder, "jupyter-repo2docker").exists()
    ]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    sha = git_server.add("docker-repo2docker-missing", {"requirements.txt": "tabulate==0.9.0\n"})
    build = BuildRequest.for_ref(resolved_ref(git_server.url("docker-repo2docker-missing"), sha))
    config = BinderConfig(builder="docker", docker_use_repo2docker=True)

    _, error = build_collecting(DockerBuildExecutor(config), build)
    assert error is not None
    assert "BINDER_DOCKER_USE_REPO2DOCKER is set but jupyter-repo2docker is not installed" in str(error)
    assert "pip install jupyter-repo2docker" in str(error)
    assert not engine.images.list(name=build.image)


def test_zenodo_record_builds_into_an_image_holding_its_unpacked_files(engine):
    upstream = UpstreamServer()
    release = {"org-repo-v1/requirements.txt": b"tabulate==0.9.0\n", "org-repo-v1/data/values.csv": b"a,b\n1,2\n"}
    upstream.add_zenodo_record("10.5281/zenodo.500", "501", {"org-repo-v1.zip": zip_bytes(release)}, software=True)
    config = BinderConfig(builder="docker", **provider_settings(upstream))
    build = BuildRequest.for_ref(asyncio.run(resolve_once("zenodo", "10.5281/zenodo.500", config)))
    try:
        events, error = build_collecting(DockerBuildExecutor(config), build)
        assert error is None, [e.message for e in events[-5:]]
        assert any(e.phase == "fetching" and "Unpacking org-repo-v1.zip" in e.message for e in events)
        code = "import os, tabulate; print(tabulate.__version__, open('data/values.csv').readlines()[1], os.getcwd())"
        output = engine.containers.run(build.image, ["python", "-c", code], remove=True).decode().split()
        assert output == ["0.9.0", "1,2", "/home/jovyan"]
    finally:
        upstream.stop()
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(build.image, force=True)
