"""`binder-actors plan`: what a build of a checkout would do on the configured backend, without building.

The builders' own plan (`detect.plan_build`) is made twice: as repo2docker reads every file (the full
picture), and with the backend's abilities, exactly as its builder calls it: that call's refusal is the build's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from binder_actors.builders.detect import (
    DOCKER_BUILDER,
    KNOWN_PYTHONS,
    LOCAL_BUILDER,
    MAJOR_PYTHONS,
    REPO2DOCKER,
    BuilderAbilities,
    BuildPlan,
    CondaEnvironment,
    Kind,
    UnsupportedRepository,
    buildpack_kind,
    find_config_dir,
    plan_build,
)
from binder_actors.builders.rlang import RPackages, cran_url
from binder_actors.config import BinderConfig
from binder_actors.config_groups import DockerSettings

# The configuration files repo2docker reads, each of which the plan either honours or names with a reason.
CONFIG_FILES = (
    "Dockerfile",
    "Project.toml",
    "JuliaProject.toml",
    "REQUIRE",
    "default.nix",
    "DESCRIPTION",
    "install.R",
    "environment.yml",
    "Pipfile",
    "Pipfile.lock",
    "requirements.txt",
    "setup.py",
    "pyproject.toml",
    "runtime.txt",
    "apt.txt",
    "postBuild",
    "start",
)
# An environment.yml without channels gets conda-forge from repo2docker (its miniforge).
REPO2DOCKER_CHANNELS = (("conda-forge",), "repo2docker's default")
PYTHON_FILES = ("requirements.txt", "setup.py", "pyproject.toml", "Pipfile", "Pipfile.lock")
ROOT_ONLY = ("setup.py", "pyproject.toml", "DESCRIPTION")


class InstallLine(BaseModel):
    description: str
    args: list[str]  # paths inside the checkout are relative to it
    cwd: str  # the folder the install runs from, relative to the checkout


class CondaPackages(BaseModel):
    source: str
    channels: list[str]  # the file's, else the backend's default ones
    channels_from: str  # the file, or the setting they come from
    specs: list[str]


class IgnoredFile(BaseModel):
    file: str
    reason: str


class CheckoutPlan(BaseModel):
    """What a build of one checkout does on one backend; `refusal` says why it would fail, if it would."""

    backend: Literal["local", "docker", "kubernetes"]
    builder: str
    kind: Kind
    python: str | None
    builds: bool
    refusal: str | None
    config_dir: str
    kind_files: list[str]  # what repo2docker installs for a dockerfile, nix, R or Julia kind (beside Python)
    installs: list[InstallLine]
    conda: CondaPackages | None
    apt_packages: list[str]
    post_build: str | None
    start: str | None
    not_honoured: list[IgnoredFile]
    notes: list[str]


@dataclass(frozen=True)
class Backend:
    """How the configured builder plans a checkout (`own_plan`, exactly its builder's call, raising what it
    refuses), and how the full picture is read whatever the backend can build."""

    name: Literal["local", "docker", "kubernetes"]
    abilities: BuilderAbilities
    default_python: str
    pythons: tuple[str, ...]
    own_plan: Callable[[Path], BuildPlan] | None  # None: repo2docker builds whatever it can read
    default_channels: tuple[tuple[str, ...], str]  # environment.yml without channels: these, and from where


def base_python_refusal(python: str, docker: DockerSettings) -> str | None:
    """The docker builder's refusal of a Python its base image does not have."""
    if python == docker.base_python:
        return None
    return (
        f"The repository asks for Python {python}, but the base image {docker.base_image} has Python "
        f"{docker.base_python}; ask for python-{docker.base_python} in runtime.txt "
        "or set BINDER_DOCKER_BASE_IMAGE (and BINDER_DOCKER_BASE_PYTHON) to an image with that Python."
    )


def docker_plan(repo_dir: Path, config: BinderConfig) -> BuildPlan:
    """The docker builder's plan: the repository's own Dockerfile, else on the base image's Python, or a conda
    environment's own Python (any the server stack runs on, BINDER_PYTHON_VERSION when the file pins none).
    UnsupportedRepository if refused."""
    docker = config.docker
    plan = plan_build(repo_dir, docker.base_python, (docker.base_python,), DOCKER_BUILDER)
    if plan.kind == "dockerfile":
        return plan  # its FROM image brings its own Python, or none
    if plan.conda is not None:
        plan = plan_build(repo_dir, config.python_version, KNOWN_PYTHONS, DOCKER_BUILDER)
        if plan.python_version not in KNOWN_PYTHONS:
            raise UnsupportedRepository(
                f"{plan.conda.source} asks for Python {plan.python_version}; the Jupyter server runs on Python "
                f"{', '.join(KNOWN_PYTHONS)}: ask for one of them."
            )
        return plan
    if plan.kernel_environment:
        raise UnsupportedRepository(
            f"The repository asks for Python {plan.python_version}, which runs only as a kernel beside a newer "
            "server (as repo2docker builds it); the docker builder does not make such kernels: build it with "
            "BINDER_BUILDER=local (which does) or on Kubernetes."
        )
    refusal = base_python_refusal(plan.python_version, docker)
    if refusal:
        raise UnsupportedRepository(refusal)
    return plan


def local_plan(repo_dir: Path, config: BinderConfig, pythons: tuple[str, ...]) -> BuildPlan:
    """The local builder's plan, refused when this machine lacks its Python."""
    from binder_actors.builders.local import interpreters_for  # the local builder's modules only where used

    plan = plan_build(repo_dir, config.python_version, pythons)
    interpreters_for(plan, config.python_version)
    return plan


def backend_for(config: BinderConfig) -> Backend:
    """The configured builder (BINDER_BUILDER), as it plans a checkout."""
    channels = (tuple(config.conda.channels), "BINDER_CONDA_CHANNELS")
    if config.builder == "local":
        from binder_actors.builders.local import available_pythons  # looks for interpreters on this machine

        pythons = available_pythons()
        return Backend(
            "local",
            LOCAL_BUILDER,
            config.python_version,
            pythons,
            lambda repo_dir: local_plan(repo_dir, config, pythons),
            channels,
        )
    if config.builder == "docker":
        docker = config.docker
        return Backend(
            "docker",
            DOCKER_BUILDER,
            docker.base_python,
            (docker.base_python,),
            lambda repo_dir: docker_plan(repo_dir, config),
            channels,
        )
    return Backend(config.builder, REPO2DOCKER, MAJOR_PYTHONS["3"], KNOWN_PYTHONS, None, REPO2DOCKER_CHANNELS)


def r_notes(r: RPackages, config: BinderConfig) -> list[str]:
    """What the docker builder installs for an R repository."""
    asked = f"{r.source} asks for R {r.version}; " if r.version else ""
    steps = [name for name, path in (("install.R", r.install_r), ("DESCRIPTION", r.description)) if path]
    return [
        f"R: {asked}Debian's r-base-core of the base image (whatever its version), IRkernel for notebooks.",
        f"R packages ({', '.join(steps) or 'none asked'}) from the CRAN snapshot of {r.snapshot}: "
        f"{cran_url(config.cran.url, r.snapshot)}",
    ]


def _relative(path: Path, repo_dir: Path) -> str:
    return path.relative_to(repo_dir).as_posix() or "."


def _in_checkout(arg: str, repo_dir: Path) -> str:
    prefix = str(repo_dir) + os.sep
    return arg[len(prefix) :] if arg.startswith(prefix) else arg


def _reason_ignored(name: str, kind: Kind, config_dir: Path, repo_dir: Path, plan: BuildPlan | None) -> str | None:
    """Why repo2docker's build pack for `kind` does not use `name` in the config folder; None when it does."""
    at_root = config_dir == repo_dir
    if kind == "dockerfile" and name != "Dockerfile":
        return "a Dockerfile repository is built from its Dockerfile alone"
    if kind == "nix" and name not in ("default.nix", "apt.txt", "postBuild", "start"):
        return "a nix repository installs default.nix (with apt.txt, postBuild and start), nothing else"
    if name in ROOT_ONLY and not at_root:
        return f"repo2docker reads {name} only at the root of a repository without a binder folder"
    if name == "install.R" and kind != "r":
        return "install.R runs only in an R repository (runtime.txt r-<date>, or DESCRIPTION at the root)"
    if kind == "conda" and name in PYTHON_FILES:
        return "environment.yml wins: repo2docker's conda build pack installs only it"
    if kind == "pipfile" and name in ("requirements.txt", "setup.py", "pyproject.toml"):
        return "a Pipfile wins: repo2docker installs only what it lists"
    if name == "Pipfile" and (config_dir / "Pipfile.lock").is_file():
        return "Pipfile.lock wins over Pipfile"
    installs_repo = plan is not None and any(step.args == (".",) for step in plan.installs)
    if name == "pyproject.toml" and kind in ("pip", "setup.py") and not installs_repo:
        return "not installed: repo2docker installs a pyproject.toml only with both [project] and [build-system]"
    return None


KIND_FILES: dict[str, tuple[str, ...]] = {
    "dockerfile": ("Dockerfile",),
    "nix": ("default.nix",),
    "r": ("runtime.txt", "DESCRIPTION", "install.R"),
    "julia": ("Project.toml", "JuliaProject.toml", "REQUIRE"),
}


def _kind_files(kind: Kind, config_dir: Path, repo_dir: Path) -> list[str]:
    present = [config_dir / name for name in KIND_FILES.get(kind, ()) if (config_dir / name).is_file()]
    return [_relative(path, repo_dir) for path in present]


def _not_honoured(kind: Kind, config_dir: Path, repo_dir: Path, plan: BuildPlan | None) -> list[IgnoredFile]:
    ignored = []
    if config_dir != repo_dir:
        folder = _relative(config_dir, repo_dir)
        for name in CONFIG_FILES:
            if (repo_dir / name).is_file():
                ignored.append(IgnoredFile(file=name, reason=f"{folder}/ exists: repo2docker reads only that folder"))
    for name in CONFIG_FILES:
        if (config_dir / name).is_file():
            reason = _reason_ignored(name, kind, config_dir, repo_dir, plan)
            if reason:
                ignored.append(IgnoredFile(file=_relative(config_dir / name, repo_dir), reason=reason))
    return ignored


def _conda_packages(environment: CondaEnvironment, backend: Backend) -> CondaPackages:
    channels, channels_from = (environment.channels, environment.source)
    if not channels:
        channels, channels_from = backend.default_channels
    return CondaPackages(
        source=environment.source, channels=list(channels), channels_from=channels_from, specs=list(environment.specs)
    )


def describe_checkout(repo_dir: Path, config: BinderConfig) -> CheckoutPlan:
    """The plan of `repo_dir` on the configured backend; a checkout it cannot build gets its plan and refusal."""
    repo_dir = repo_dir.resolve()
    backend = backend_for(config)
    refusal: str | None = None
    notes: list[str] = []
    own: BuildPlan | None = None
    if backend.own_plan is None:
        # repo2docker builds whatever it can read; its own errors come with the build.
        notes.append("repo2docker builds this checkout; the steps above are how binder-actors reads its files.")
    else:
        try:
            # The builder's own call: what it refuses, the plan refuses in the same words.
            own = backend.own_plan(repo_dir)
        except UnsupportedRepository as error:
            refusal = str(error)
    plan: BuildPlan | None
    try:
        # The builder's plan when it builds; else what repo2docker would install, for the full picture.
        plan = own or plan_build(repo_dir, backend.default_python, backend.pythons, REPO2DOCKER)
    except UnsupportedRepository as error:
        plan = None
        if str(error) != refusal:  # said once: the refusal, when it is the same
            notes.append(f"The rest of this plan is unknown: {error}")
    try:
        config_dir = find_config_dir(repo_dir)
    except UnsupportedRepository:  # both binder/ and .binder/: refused above; describe it as repo2docker picks
        config_dir = repo_dir / ".binder"
    kind = plan.kind if plan else buildpack_kind(repo_dir, config_dir)
    python_less = kind in ("dockerfile", "nix")
    installs = [] if plan is None or python_less else [*plan.installs, *plan.server_installs]
    if own is not None and own.r is not None:
        notes += r_notes(own.r, config)
    if plan is not None and plan.kernel_environment:
        notes.append(
            f"Python {plan.python_version} runs as the notebook's kernel, in an environment of its own beside the "
            f"server's Python {config.python_version}, as repo2docker builds it; requirements3.txt installs "
            "into the server's environment."
        )
    return CheckoutPlan(
        backend=backend.name,
        builder=backend.abilities.name,
        kind=kind,
        python=None if plan is None or python_less else plan.python_version,
        builds=refusal is None,
        refusal=refusal,
        config_dir=_relative(config_dir, repo_dir),
        kind_files=_kind_files(kind, config_dir, repo_dir),
        installs=[
            InstallLine(
                description=step.description,
                args=[_in_checkout(arg, repo_dir) for arg in step.args],
                cwd=_relative(step.cwd or repo_dir, repo_dir),
            )
            for step in installs
        ],
        conda=_conda_packages(plan.conda, backend) if plan and plan.conda and not python_less else None,
        apt_packages=list(plan.apt_packages) if plan and kind != "dockerfile" else [],
        post_build=_relative(plan.post_build, repo_dir) if plan and plan.post_build and kind != "dockerfile" else None,
        start=_relative(plan.start, repo_dir) if plan and plan.start and kind != "dockerfile" else None,
        not_honoured=_not_honoured(kind, config_dir, repo_dir, plan),
        notes=notes,
    )


def render_text(plan: CheckoutPlan, repo_dir: Path) -> str:
    """The plan as a person reads it, top to bottom in the order the build runs."""
    lines = [
        f"Plan for {repo_dir} on the {plan.backend} backend ({plan.builder})",
        f"  kind:       {plan.kind}",
        f"  python:     {plan.python or '- (none chosen)'}",
        f"  config:     {plan.config_dir if plan.config_dir == '.' else plan.config_dir + '/'}",
    ]
    if plan.kind_files:
        lines.append(f"  {plan.kind + ':':<11} {', '.join(plan.kind_files)}")
    if plan.apt_packages:
        lines.append(f"  apt:        {' '.join(plan.apt_packages)}")
    if plan.conda:
        lines += [
            f"  conda:      {plan.conda.source}",
            f"    channels: {', '.join(plan.conda.channels)} (from {plan.conda.channels_from})",
            f"    packages: {', '.join(plan.conda.specs)}",
        ]
    for step in plan.installs:
        folder = "" if step.cwd == "." else f" (from {step.cwd}/)"
        lines.append(f"  install:    {step.description}{folder}: pip install {' '.join(step.args)}")
    lines.append(f"  postBuild:  {plan.post_build or '-'}")
    lines.append(f"  start:      {plan.start or '-'}")
    if plan.not_honoured:
        lines.append("  not honoured:")
        lines += [f"    {ignored.file}: {ignored.reason}" for ignored in plan.not_honoured]
    lines += [f"  note:       {note}" for note in plan.notes]
    lines.append("  builds:     yes" if plan.builds else f"  builds:     no: {plan.refusal}")
    return "\n".join(lines) + "\n"
