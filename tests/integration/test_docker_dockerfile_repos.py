"""A repository's own Dockerfile on BINDER_BUILDER=docker, against the real dockerd: built as repo2docker's
Dockerfile build pack builds it, launched through the hub (jupyterhub-singleuser, as BinderHub runs it), and
the ways it fails: no JupyterHub in the image, a failing RUN step, a FROM image that cannot be pulled.

Every FROM is the locally built base image (nothing can be pulled here); pip inside the build reaches PyPI.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys

import docker
import httpx

from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.builders.stack import server_stack
from binder_actors.config import BinderConfig
from binder_actors.docker_engine import BUILDING_LABEL, REF_LABEL
from binder_actors.models import BuildRequest
from tests.docker_stack import build_collecting, build_leftovers, resolved_ref
from tests.helpers import GitServer, git_spec, read_events, run_in_kernel, wait_for

BASE = "binder-base:bookworm"
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
# As binder-examples/minimal-dockerfile does it: its own user from the build arguments, the repository in
# its home, a server stack of its own; its CMD is not a hub's server, which the session must not run.
HUB_DOCKERFILE = f"""FROM {BASE}
ARG NB_USER
ARG NB_UID
ENV USER=${{NB_USER}} HOME=/home/${{NB_USER}}
RUN useradd --create-home --uid ${{NB_UID}} ${{NB_USER}}
RUN python3 -m venv /opt/notebook && uv pip install --python /opt/notebook/bin/python {shlex.join(server_stack())}
ENV PATH=/opt/notebook/bin:$PATH
COPY . ${{HOME}}
RUN chown -R ${{NB_UID}} ${{HOME}} && echo "$NB_USER $NB_UID" > /opt/build-args.txt
USER ${{NB_USER}}
WORKDIR ${{HOME}}
CMD ["sleep", "infinity"]
"""
# The classic builder's lines naming a step's container and a committed image.
RUNNING_RE = re.compile(r"^ ---> Running in ([0-9a-f]{12})$")
COMMITTED_RE = re.compile(r"^ ---> ([0-9a-f]{12})$")


def launch(docker_stack, git_server: GitServer, name: str, files: dict[str, str]) -> tuple[list[dict], BuildRequest]:
    sha = git_server.add(name, files)
    events = read_events(docker_stack.url, f"build/git/{git_spec(git_server.url(name), 'main')}")
    return events, BuildRequest.for_ref(resolved_ref(git_server.url(name), sha))


def engine_ids(messages: list[str], pattern: re.Pattern[str]) -> set[str]:
    return {match[1] for message in messages for line in message.splitlines() if (match := pattern.match(line))}


def exists(engine: docker.DockerClient, kind: str, ident: str) -> bool:
    try:
        getattr(engine, kind).get(ident)
    except docker.errors.NotFound:
        return False
    return True


def test_dockerfile_that_installs_jupyterhub_launches_and_lands_on_its_notebook(docker_stack, git_server, engine):
    files = {"binder/Dockerfile": HUB_DOCKERFILE, "index.ipynb": NOTEBOOK, "data.csv": "a,b\n1,2\n"}
    events, build = launch(docker_stack, git_server, "dockerfile-hub", files)
    ready = events[-1]
    assert ready["phase"] == "ready", [e.get("message") for e in events[-5:]]
    assert any("from binder/Dockerfile" in e.get("message", "") for e in events)
    labels = engine.images.get(ready["image"]).labels
    assert labels[REF_LABEL] == build.image.rsplit(":", 1)[1] and labels[BUILDING_LABEL] == ""

    headers = {"Authorization": f"token {ready['token']}"}
    notebook = httpx.get(f"{ready['url']}api/contents/index.ipynb", headers=headers, timeout=30)
    assert notebook.status_code == 200 and notebook.json()["type"] == "notebook"
    code = "import os; print(os.getcwd(), os.getuid(), open('data.csv').read().split()[1])"
    code += "; print(open('/opt/build-args.txt').read())"
    cwd, uid, row, nb_user, nb_uid = run_in_kernel(ready["url"], ready["token"], code).split()
    assert (cwd, uid, row, nb_user, nb_uid) == ("/home/jovyan", "1000", "1,2", "jovyan", "1000")


def test_dockerfile_without_jupyterhub_fails_saying_the_dockerfile_must_install_it(docker_stack, git_server, engine):
    events, build = launch(docker_stack, git_server, "dockerfile-no-hub", {"Dockerfile": f"FROM {BASE}\nRUN true\n"})
    failed = events[-1]
    assert failed["phase"] == "failed"
    assert "The image built from Dockerfile has no jupyterhub-singleuser" in failed["message"]
    assert "the Dockerfile must install jupyterhub" in failed["message"]
    # Not left tagged (every launch would fail the same way), nor its check's container.
    assert not engine.images.list(name=build.image)
    assert build_leftovers(engine, build.build_name) == []


def test_failing_run_step_fails_the_build_with_its_output(docker_stack, git_server, engine):
    dockerfile = f"FROM {BASE}\nRUN echo committed > /layer\nRUN echo about-to-fail-loudly && exit 3\n"
    events, build = launch(docker_stack, git_server, "dockerfile-run-fails", {".binder/Dockerfile": dockerfile})
    failed = events[-1]
    assert failed["phase"] == "failed"
    assert "docker build failed: The command '/bin/sh -c echo about-to-fail-loudly && exit 3'" in failed["message"]
    assert "returned a non-zero code: 3" in failed["message"]
    assert "about-to-fail-loudly" in failed["message"].split("\n", 1)[1]  # the step's output, in the event
    messages = [e.get("message", "") for e in events]
    committed = engine_ids(messages, COMMITTED_RE) - {engine.images.get(BASE).id.removeprefix("sha256:")[:12]}
    assert committed, "the build committed no layer before failing"
    assert [image for image in committed if exists(engine, "images", image)] == []
    assert not engine.images.list(name=build.image)


def test_from_image_that_cannot_be_pulled_fails_naming_it(docker_stack, git_server):
    image = "registry.binder-actors.invalid/nobody/nothing:1.0"
    dockerfile = f"FROM {BASE} AS first\nRUN true\nFROM {image}\nRUN true\n"
    events, _ = launch(docker_stack, git_server, "dockerfile-unpullable", {"Dockerfile": dockerfile})
    failed = events[-1]
    assert failed["phase"] == "failed"
    assert f"The image {image} that Dockerfile builds FROM could not be pulled" in failed["message"], failed


def test_build_timeout_stops_a_dockerfile_build_and_its_step(engine, git_server: GitServer):
    dockerfile = f"FROM {BASE}\nRUN echo started-sleeping && sleep 600\n"
    sha = git_server.add("dockerfile-slow", {"Dockerfile": dockerfile})
    build = BuildRequest.for_ref(resolved_ref(git_server.url("dockerfile-slow"), sha))
    events, error = build_collecting(DockerBuildExecutor(BinderConfig(builder="docker", build_timeout=20)), build)
    assert error is not None and "BINDER_BUILD_TIMEOUT=20s" in str(error)
    (step,) = engine_ids([e.message for e in events], RUNNING_RE)
    assert not exists(engine, "containers", step)


INTERRUPTED_BUILD = """
import asyncio, sys
from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.config import BinderConfig
from binder_actors.models import BuildRequest

async def emit(event):
    print(event.message, flush=True)

request = BuildRequest.model_validate_json(sys.argv[1])
asyncio.run(DockerBuildExecutor(BinderConfig(builder="docker")).build(request, emit))
"""


def test_restart_removes_what_an_interrupted_dockerfile_build_left(engine, git_server: GitServer, tmp_path):
    # Its steps carry no label of ours: dockerd itself cancels a build whose client went away and removes
    # the running step's container (forcerm); the layers it committed are in the build's journal.
    dockerfile = f"FROM {BASE}\nRUN echo {tmp_path.name} > /layer\nRUN echo started-sleeping && sleep 600\n"
    sha = git_server.add("dockerfile-interrupted", {"Dockerfile": dockerfile})
    build = BuildRequest.for_ref(resolved_ref(git_server.url("dockerfile-interrupted"), sha))
    builder = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_BUILD, build.model_dump_json()],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "BINDER_DATA_DIR": str(tmp_path)},
    )
    lines: list[str] = []
    try:
        assert builder.stdout is not None
        for line in builder.stdout:
            lines.append(line.rstrip("\n"))
            if lines[-1] == "started-sleeping":
                break
    finally:
        os.killpg(builder.pid, signal.SIGKILL)
        builder.wait()
    (layer,) = engine_ids(lines, COMMITTED_RE) - {engine.images.get(BASE).id.removeprefix("sha256:")[:12]}
    steps = engine_ids(lines, RUNNING_RE)
    assert len(steps) == 2 and exists(engine, "images", layer), lines
    wait_for(lambda: not any(exists(engine, "containers", s) for s in steps), 60, "dockerd to remove the step")

    removed = DockerBuildExecutor(BinderConfig(builder="docker", data_dir=tmp_path)).cleanup_incomplete()
    assert build.build_name in removed
    assert not exists(engine, "images", layer)
    assert not any((tmp_path / "docker-builds").iterdir())
    assert not engine.images.list(name=build.image)
