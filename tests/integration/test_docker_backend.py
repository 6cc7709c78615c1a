"""BINDER_BUILDER=docker against a real dockerd: images built from apt.txt and requirements.txt, sessions in containers,
images pushed to a real registry (Debian's docker-registry on 127.0.0.1, which dockerd may use over plain http).

The docker stack (tests/docker_stack.py) shares the session's Ray and Serve (one Ray per test session);
environment.yml's conda packages are tested in test_docker_conda.py.
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

import docker
import pytest
import ray
from pydantic import SecretStr

from binder_actors.builders import BuildFailed
from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.config import BinderConfig
from binder_actors.docker_engine import BUILDING_LABEL
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest
from binder_actors.providers import resolve_once
from binder_actors.registries.oci import OCIRegistry, RegistryAuthError
from tests.docker_stack import build_collecting, build_leftovers, resolved_ref
from tests.helpers import GitServer, git_spec, read_events, run_in_kernel, wait_for
from tests.integration.test_record_launches import provider_settings
from tests.registry import RunningRegistry, start_registry, write_htpasswd
from tests.upstreams import UpstreamServer, zip_bytes

APT_REPO = {
    "apt.txt": "# a small Debian package the base image lacks\njq\n",
    "requirements.txt": "tabulate==0.9.0\n",
    "postBuild": "#!/bin/bash\nset -e\necho built-by-postBuild > ~/.postbuild-marker\n",
}
PUSH_USER = "binder-pusher"
PUSH_PASSWORD = "push-password-never-shown"


def session_containers(engine: docker.DockerClient, user: str) -> list:
    return engine.containers.list(all=True, filters={"label": f"binder-actors.session={user}"})


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


def test_post_build_with_a_python_shebang_runs_with_python(docker_stack, git_server: GitServer):
    post_build = (
        "#!/usr/bin/env python\nimport sys\n"
        "open('post-build-python.txt', 'w').write('%d.%d %s' % (sys.version_info[:2] + (sys.prefix,)))\n"
    )
    git_server.add("docker-python-post-build", {"postBuild": post_build})
    events = read_events(docker_stack.url, f"build/git/{git_spec(git_server.url('docker-python-post-build'), 'main')}")
    ready = events[-1]
    assert ready["phase"] == "ready", events[-3:]
    written = run_in_kernel(ready["url"], ready["token"], "print(open('post-build-python.txt').read())").split()
    assert written == [docker_stack.config.docker.base_python, "/srv/venv"]


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
        ({"runtime.txt": "python-2.7\n"}, ["asks for Python 2.7", "runs only as a kernel beside a newer server"]),
        (
            {"environment.yml": "dependencies:\n  - python=3.7\n  - numpy\n"},
            ["environment.yml asks for Python 3.7", "the Jupyter server runs on Python 3.8"],
        ),
    ],
    ids=[
        "missing-pip-package",
        "missing-apt-package",
        "python-the-base-lacks",
        "python-2.7",
        "conda-python-the-stack-lacks",
    ],
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
