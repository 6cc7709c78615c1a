"""BINDER_BUILDER=docker with environment.yml's conda packages from the test channel on 127.0.0.1
(tests/conda_channel.py): the environment solved and installed on the host as the local builder does,
copied into the image, and used from a session's kernel in its container.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import docker
import pytest

from binder_actors.builders.conda import solve_environment
from binder_actors.builders.detect import plan_build
from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest
from tests.conda_channel import CONDA_REPO, ChannelServer
from tests.docker_stack import build_collecting, build_leftovers, resolved_ref
from tests.helpers import GitServer, git_spec, make_repo, read_events, run_in_kernel

CONDA_CHECK = textwrap.dedent(
    """
    import shutil, subprocess, sys, condalib, tabulate
    hello = subprocess.run(["conda-hello"], capture_output=True, text=True).stdout.strip()
    print(sys.executable, condalib.ANSWER, tabulate.__version__, shutil.which("conda-hello"), hello.replace(" ", "_"))
    """
)


@pytest.fixture
def channel(conda_channel: ChannelServer | None) -> ChannelServer:
    if conda_channel is None:
        pytest.skip("no pyenv CPython 3.10 on this machine to make the channel's python package from")
    return conda_channel


async def _ignore(event: BinderEvent) -> None:
    pass


def packages_in_image(engine: docker.DockerClient, image: str) -> set[str]:
    """name-version-build of every conda package installed in the image's /srv/conda."""
    listing = engine.containers.run(image, ["ls", "/srv/conda/conda-meta"], remove=True).decode()
    return {name.removesuffix(".json") for name in listing.split() if name.endswith(".json")}


def packages_the_local_builder_solves(repo_dir: Path, config: BinderConfig, cache: Path) -> set[str]:
    """What the local builder's plan and solve make of the same repository (a cache of its own)."""
    plan = plan_build(repo_dir, config.python_version, (config.python_version,))
    assert plan.conda is not None
    records = asyncio.run(solve_environment(plan.conda, config.conda, cache, _ignore))
    return {f"{record.name.normalized}-{record.version}-{record.build}" for record in records}


def test_a_conda_environment_with_a_pip_section_runs_in_the_container_with_the_local_builders_packages(
    docker_stack, git_server: GitServer, engine, channel, tmp_path
):
    git_server.add("docker-conda", CONDA_REPO)
    events = read_events(docker_stack.url, f"build/git/{git_spec(git_server.url('docker-conda'), 'main')}")
    ready = events[-1]
    assert ready["phase"] == "ready", events[-3:]
    messages = [event.get("message", "") for event in events]
    assert any(m.startswith("Solving the conda packages of binder/environment.yml") for m in messages)
    executable, answer, version, hello_path, hello = run_in_kernel(ready["url"], ready["token"], CONDA_CHECK).split()
    # The kernel runs on the environment's Python, the conda package's binary is on PATH.
    assert (executable, answer, version) == ("/srv/conda/bin/python", "42", "0.9.0")
    assert (hello_path, hello) == ("/srv/conda/bin/conda-hello", "hello_from_a_conda_package")

    make_repo(tmp_path, "same-repo", CONDA_REPO)
    local = packages_the_local_builder_solves(tmp_path / "same-repo", docker_stack.config, tmp_path / "cache")
    assert packages_in_image(engine, ready["image"]) == local
    assert local == {"conda-hello-1.0-0", "condalib-1.0-0", "python-3.10.99-h0_host"}  # not two empty sets

    # The same environment in another repository: packages from the host's cache, layers from docker's.
    git_server.add("docker-conda-again", {**CONDA_REPO, "README.md": "another repository\n"})
    again = read_events(docker_stack.url, f"build/git/{git_spec(git_server.url('docker-conda-again'), 'main')}")
    assert again[-1]["phase"] == "ready", again[-3:]
    messages = [event.get("message", "") for event in again]
    assert "Installed 3 conda packages (3 from the cache" in "\n".join(messages)
    assert not any(m.startswith("Downloading") for m in messages)
    copy = next(i for i, m in enumerate(messages) if "COPY --chown=1000:1000 conda/ /srv/conda/" in m)
    assert "Using cache" in messages[copy + 1], messages[copy : copy + 3]


def test_an_unsolvable_conda_spec_fails_with_the_solvers_explanation_and_leaves_no_image(
    docker_stack, git_server: GitServer, engine, channel
):
    files = {"environment.yml": "dependencies:\n  - python=3.10\n  - broken-dep\n"}
    sha = git_server.add("docker-conda-unsolvable", files)
    events = read_events(docker_stack.url, f"build/git/{git_spec(git_server.url('docker-conda-unsolvable'), 'main')}")
    assert events[-1]["phase"] == "failed", events[-3:]
    assert "The conda packages of environment.yml cannot be installed together" in events[-1]["message"]
    assert "no-such-package" in events[-1]["message"]
    build = BuildRequest.for_ref(resolved_ref(git_server.url("docker-conda-unsolvable"), sha))
    assert build_leftovers(engine, build.build_name) == []
    assert not engine.images.list(name=build.image)


def test_a_stopped_conda_channel_fails_naming_its_url_and_leaves_no_image(
    engine, git_server: GitServer, channel, tmp_path
):
    stopped = ChannelServer(channel.root)
    stopped.stop()
    sha = git_server.add("docker-conda-offline", {"environment.yml": "dependencies:\n  - python=3.10\n  - condalib\n"})
    build = BuildRequest.for_ref(resolved_ref(git_server.url("docker-conda-offline"), sha))
    config = BinderConfig(builder="docker", data_dir=tmp_path, conda_channel_alias=stopped.url)
    events, error = build_collecting(DockerBuildExecutor(config), build)
    assert error is not None, "a build from a stopped channel succeeded"
    assert f"could not be read ({stopped.url}conda-forge/)" in str(error), str(error)
    assert not any(event.message.startswith("Step 1/") for event in events)  # failed before docker started
    assert build_leftovers(engine, build.build_name) == []
    assert not engine.images.list(name=build.image)
