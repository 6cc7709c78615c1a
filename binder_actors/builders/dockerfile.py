"""The Dockerfile of a build plan, for the docker builder: pure, so every case is table-tested.

It mirrors the local builder's layout: the server stack in a venv, the repository in the user's home, and an
environment.yml's conda environment (installed on the host into the build context) at /srv/conda.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from binder_actors.builders.detect import BuildPlan, script_command
from binder_actors.builders.rlang import RPROFILE_CONTEXT, RPROFILE_SITE, r_build_lines, shared_r_lines
from binder_actors.builders.stack import TRIMMED_PACKAGES, server_stack
from binder_actors.docker_engine import BUILDING_LABEL, SHARED_STEP

HOME = "/home/jovyan"
VENV = "/srv/venv"
CONDA_PREFIX = "/srv/conda"
CONDA_CONTEXT = "conda"  # the build context's folder the host installs the conda environment into
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _in_container(arg: str, repo_dir: Path) -> str:
    """A host path of the clone as the path relative to the repository, the build's working folder."""
    prefix = str(repo_dir) + os.sep
    return arg[len(prefix) :] if arg.startswith(prefix) else arg


def make_dockerfile(plan: BuildPlan, repo_dir: Path, *, base_image: str, build_name: str) -> str:
    """The Dockerfile of one image: pure, from the plan; the build context holds the clone as `repo/`.

    The user, the venv and the server stack come first and are the same for every image, so docker
    builds them once and every later image starts from that cached layer; with a conda environment
    (the context's `conda/`, installed for /srv/conda), the stack runs on its Python and is shared by
    the images of the same environment.
    """
    relative = {
        "post_build": plan.post_build.relative_to(repo_dir).as_posix() if plan.post_build else None,
        "start": plan.start.relative_to(repo_dir).as_posix() if plan.start else None,
    }
    stack = shlex.join(server_stack())
    trim = shlex.join(TRIMMED_PACKAGES)
    lines = [
        f"FROM {base_image}",
        f"LABEL {BUILDING_LABEL}={SHARED_STEP}",
        f"ENV NB_USER=jovyan NB_UID=1000 HOME={HOME} REPO_DIR={HOME} VIRTUAL_ENV={VENV} UV_NO_CACHE=1",
        # The repository's scripts install into ~/.local (pip --user) and the venv; both come first.
        f"ENV PATH={HOME}/.local/bin:{VENV}/bin:{SYSTEM_PATH}",
        f"RUN groupadd --gid 1000 jovyan && useradd --create-home --uid 1000 --gid 1000 --shell /bin/bash jovyan"
        f" && install -d -o 1000 -g 1000 {VENV}",
    ]
    if plan.conda is None:
        python = f"{VENV}/bin/python"
        lines += [
            "USER jovyan",
            # Byte-compiled here, once: a container starts from the image's files every time, so bytecode
            # Python writes at run time is lost with the container and every server start would pay ~2 s again.
            f"RUN python3 -m venv {VENV} && uv pip install --compile-bytecode --python {python} {stack}"
            f" && uv pip uninstall --python {python} {trim}",
        ]
    else:
        python = f"{CONDA_PREFIX}/bin/python"
        lines += [
            # Still shared steps: docker checksums the copied files, so every image of the same solved
            # environment reuses these layers, the server stack included (made for the environment's Python).
            f"COPY --chown=1000:1000 {CONDA_CONTEXT}/ {CONDA_PREFIX}/",
            "USER jovyan",
            f"RUN uv venv --quiet --python {python} {VENV}"
            f" && uv pip install --compile-bytecode --python {VENV}/bin/python {stack}"
            f" && uv pip uninstall --python {VENV}/bin/python {trim}",
            # The environment's Python runs the server and the kernel; its commands come first, as on the
            # local builder, and the stack's (jupyter ...) after them.
            f"ENV VIRTUAL_ENV={CONDA_PREFIX} PATH={CONDA_PREFIX}/bin:{HOME}/.local/bin:{VENV}/bin:{SYSTEM_PATH}",
        ]
    if plan.r is not None:
        lines += shared_r_lines()  # after the stack: its Jupyter gets the R kernel, every R image shares it
    lines += ["USER root", f"LABEL {BUILDING_LABEL}={build_name}"]
    if plan.r is not None:
        lines.append(f"COPY {RPROFILE_CONTEXT} {RPROFILE_SITE}")  # the build's CRAN snapshot
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
    install = ["uv", "pip", "install", "--python", python]
    for step in plan.installs:
        # A step run from a folder of its own (environment.yml's pip section) runs there in the image too.
        folder = step.cwd.relative_to(repo_dir).as_posix() if step.cwd and step.cwd != repo_dir else None
        if folder:
            lines.append(f"WORKDIR {HOME}/{folder}")
        # The exec form: requirement markers and URLs reach uv as they are, no shell quoting involved.
        lines.append("RUN " + json.dumps([*install, *(_in_container(arg, repo_dir) for arg in step.args)]))
        if folder:
            lines.append(f"WORKDIR {HOME}")
    if plan.r is not None:
        lines += r_build_lines(plan.r, repo_dir)  # after the Python installs, before postBuild
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
