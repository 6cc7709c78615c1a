"""The Dockerfile of a build plan, for the docker builder: pure, so every case is table-tested.

It mirrors the local builder's layout: the server stack in a venv, the repository in the user's home.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from binder_actors.builders.detect import BuildPlan, script_command
from binder_actors.builders.stack import TRIMMED_PACKAGES, server_stack
from binder_actors.docker_engine import BUILDING_LABEL, SHARED_STEP

HOME = "/home/jovyan"
VENV = "/srv/venv"


def _in_container(arg: str, repo_dir: Path) -> str:
    """A host path of the clone as the path relative to the repository, the build's working folder."""
    prefix = str(repo_dir) + os.sep
    return arg[len(prefix) :] if arg.startswith(prefix) else arg


def make_dockerfile(plan: BuildPlan, repo_dir: Path, *, base_image: str, build_name: str) -> str:
    """The Dockerfile of one image: pure, from the plan; the build context holds the clone as `repo/`.

    The user, the venv and the server stack come first and are the same for every image, so docker
    builds them once and every later image starts from that cached layer.
    """
    relative = {
        "post_build": plan.post_build.relative_to(repo_dir).as_posix() if plan.post_build else None,
        "start": plan.start.relative_to(repo_dir).as_posix() if plan.start else None,
    }
    stack = shlex.join(server_stack())
    lines = [
        f"FROM {base_image}",
        f"LABEL {BUILDING_LABEL}={SHARED_STEP}",
        f"ENV NB_USER=jovyan NB_UID=1000 HOME={HOME} REPO_DIR={HOME} VIRTUAL_ENV={VENV} UV_NO_CACHE=1",
        # The repository's scripts install into ~/.local (pip --user) and the venv; both come first.
        f"ENV PATH={HOME}/.local/bin:{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"RUN groupadd --gid 1000 jovyan && useradd --create-home --uid 1000 --gid 1000 --shell /bin/bash jovyan"
        f" && install -d -o 1000 -g 1000 {VENV}",
        "USER jovyan",
        # Byte-compiled here, once: a container starts from the image's files every time, so bytecode
        # Python writes at run time is lost with the container and every server start would pay ~2 s again.
        f"RUN python3 -m venv {VENV} && uv pip install --compile-bytecode --python {VENV}/bin/python {stack}"
        f" && uv pip uninstall --python {VENV}/bin/python {shlex.join(TRIMMED_PACKAGES)}",
        "USER root",
        f"LABEL {BUILDING_LABEL}={build_name}",
    ]
    if plan.apt_packages:
        lines.append(
            "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
            f"{shlex.join(plan.apt_packages)} && rm -rf /var/lib/apt/lists/*"
        )
    lines += [
        f"COPY --chown=1000:1000 repo/ {HOME}/",
        "USER jovyan",
        f"WORKDIR {HOME}",
    ]
    install = ["uv", "pip", "install", "--python", f"{VENV}/bin/python"]
    for step in plan.installs:
        # A step run from a folder of its own (environment.yml's pip section) runs there in the image too.
        folder = step.cwd.relative_to(repo_dir).as_posix() if step.cwd and step.cwd != repo_dir else None
        if folder:
            lines.append(f"WORKDIR {HOME}/{folder}")
        # The exec form: requirement markers and URLs reach uv as they are, no shell quoting involved.
        lines.append("RUN " + json.dumps([*install, *(_in_container(arg, repo_dir) for arg in step.args)]))
        if folder:
            lines.append(f"WORKDIR {HOME}")
    scripts = [path for path in (relative["post_build"], relative["start"]) if path]
    if scripts:
        lines.append("RUN " + json.dumps(["chmod", "+x", *scripts]))
    if plan.post_build and relative["post_build"]:
        # As repo2docker runs it: by its shebang when it has one, else with bash (the local builder's rule).
        runner = script_command(plan.post_build)[:-1]
        lines.append("RUN " + json.dumps([*runner, f"{HOME}/{relative['post_build']}"]))
    entrypoint = ["tini", "-g", "--"] + ([f"{HOME}/{relative['start']}"] if relative["start"] else [])
    lines += [
        "ENTRYPOINT " + json.dumps(entrypoint),
        'CMD ["jupyterhub-singleuser"]',
        f'LABEL {BUILDING_LABEL}=""',
    ]
    return "\n".join(lines) + "\n"
