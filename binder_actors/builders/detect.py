"""repo2docker's rules as a pure function of a repository's files: what to install, with which Python.

`plan_build` reads files and decides; it runs nothing. The builders execute the plan and `binder-actors
plan` shows it; what a builder cannot honour is refused here, naming the file and the backend.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from binder_actors.builders import UnsupportedRepository
from binder_actors.builders.pipfile import pipfile_plan
from binder_actors.builders.rlang import RPackages, r_packages

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


# Pythons repo2docker can give a repository, newest last.
KNOWN_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
CONTAINER_BACKENDS = "run binder-actors with BINDER_BUILDER=docker or on Kubernetes for this repository"


@dataclass(frozen=True)
class BuilderAbilities:
    """Who executes the plan, and which container-only files it can honour; the rest are refused naming it."""

    name: str
    honours: frozenset[str] = frozenset()
    elsewhere: str = CONTAINER_BACKENDS
    conda: bool = False  # installs the conda packages of environment.yml
    r_beside_conda: bool = False  # reads install.R beside an environment.yml without an R runtime (repo2docker)


# The files only a container build can honour, and what each asks for.
CONTAINER_FILES = {
    "Dockerfile": "a Dockerfile",
    "Project.toml": "Julia packages",
    "JuliaProject.toml": "Julia packages",
    "REQUIRE": "Julia packages",
    "default.nix": "nix",
    "install.R": "R packages",
    "DESCRIPTION": "an R package",
    "apt.txt": "Debian packages",
}
LOCAL_BUILDER = BuilderAbilities("the local builder", conda=True)
# repo2docker itself (Kubernetes build pods): every file is its to honour.
REPO2DOCKER = BuilderAbilities("repo2docker", frozenset(CONTAINER_FILES), conda=True, r_beside_conda=True)
DOCKER_BUILDER = BuilderAbilities(
    "the docker builder",
    frozenset({"apt.txt", "Dockerfile", "install.R", "DESCRIPTION"}),
    "run binder-actors on Kubernetes (repo2docker build pods) for this repository",
    conda=True,
)

_RUNTIME_RE = re.compile(r"^python-(?P<major>\d+)(?:\.(?P<minor>\d+))?$")
# An R snapshot (`r-2023-06-01`, `r-4.3-2023-06-01`): what makes repo2docker pick its R build pack.
_R_SNAPSHOT_RE = re.compile(r"^r-(?:\d+(?:\.\d+)*-)?\d{4}-\d{2}-\d{2}$")
# The build packs repo2docker picks from, named as `binder-actors plan` reports them.
Kind = Literal["pip", "setup.py", "pipfile", "conda", "r", "julia", "dockerfile", "nix"]
# What repo2docker gives a major-only runtime.txt (`python-3`).
MAJOR_PYTHONS = {"2": "2.7", "3": "3.10"}
# Pythons repo2docker runs only as the kernel, in an environment beside the server's (the server runs
# on its default Python): those before 3.7.
LEGACY_KERNEL_PYTHONS = ("2.7", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6")
_CONDA_PYTHON_RE = re.compile(r"^python\s*(?P<op>==|=|>=|<=|>|<|~=)?\s*(?P<version>[\d.*]+)?$")


@dataclass(frozen=True)
class InstallStep:
    """One `uv pip install <args>`, run from `cwd` (None: the repository folder)."""

    description: str
    args: tuple[str, ...]
    cwd: Path | None = None


@dataclass(frozen=True)
class CondaEnvironment:
    """The conda packages of an environment.yml; `channels` empty means the configured default ones."""

    source: str  # the file, relative to the repository
    channels: tuple[str, ...]
    specs: tuple[str, ...]  # match specs, the Python one included


@dataclass(frozen=True)
class BuildPlan:
    config_dir: Path
    python_version: str
    kind: Kind = "pip"
    installs: tuple[InstallStep, ...] = ()
    post_build: Path | None = None
    start: Path | None = None
    apt_packages: tuple[str, ...] = ()
    conda: CondaEnvironment | None = None
    notes: tuple[str, ...] = field(default=())
    # Installed into the server's environment: requirements3.txt beside a kernel environment, as repo2docker does.
    server_installs: tuple[InstallStep, ...] = ()
    r: RPackages | None = None  # an R repository's R, on a builder that installs it

    @property
    def kernel_environment(self) -> bool:
        """Does `python_version` run only as the kernel, in an environment of its own beside the server's?"""
        return self.python_version in LEGACY_KERNEL_PYTHONS


def find_config_dir(repo_dir: Path) -> Path:
    """`.binder/`, then `binder/`, then the repository root; both folders is an error."""
    dot_binder, binder = repo_dir / ".binder", repo_dir / "binder"
    if dot_binder.is_dir() and binder.is_dir():
        raise UnsupportedRepository("The repository has both binder/ and .binder/ folders: keep only one.")
    if dot_binder.is_dir():
        return dot_binder
    return binder if binder.is_dir() else repo_dir


def _runtime_text(config_dir: Path) -> str:
    runtime = config_dir / "runtime.txt"
    return runtime.read_text().strip() if runtime.is_file() else ""


def buildpack_kind(repo_dir: Path, config_dir: Path) -> Kind:
    """The build pack repo2docker picks, in its order: Dockerfile, Julia, nix, R, conda, Pipfile, Python
    (`setup.py` when the repository itself is its only install, else `pip`, also the default)."""
    has = {path.name for path in config_dir.iterdir() if path.is_file()} if config_dir.is_dir() else set()
    if "Dockerfile" in has:
        return "dockerfile"
    if has & {"Project.toml", "JuliaProject.toml", "REQUIRE"}:
        return "julia"
    if "default.nix" in has:
        return "nix"
    # repo2docker reads DESCRIPTION only at the root of a repository without a binder folder.
    if _R_SNAPSHOT_RE.match(_runtime_text(config_dir)) or (config_dir == repo_dir and "DESCRIPTION" in has):
        return "r"
    if "environment.yml" in has:
        return "conda"
    if has & {"Pipfile", "Pipfile.lock"}:
        return "pipfile"
    try:
        installs_repo = config_dir == repo_dir and ("setup.py" in has or _installable_pyproject(repo_dir))
    except UnsupportedRepository:  # an unreadable pyproject.toml: the plan refuses it, the kind stays Python
        installs_repo = False
    return "setup.py" if installs_repo and "requirements.txt" not in has else "pip"


def runtime_python(config_dir: Path) -> str | None:
    """The X.Y of runtime.txt's `python-X.Y` (`python-3`: repo2docker's default Python 3); None without it or for R."""
    text = _runtime_text(config_dir)
    if not text or text.startswith("r-"):
        return None
    match = _RUNTIME_RE.match(text)
    if not match:
        raise UnsupportedRepository(
            f"runtime.txt says {text!r}; write `python-X.Y` (major.minor only, e.g. python-3.11)."
        )
    version = f"{match['major']}.{match['minor']}" if match["minor"] else MAJOR_PYTHONS.get(match["major"])
    if version is None:
        raise UnsupportedRepository(f"runtime.txt says {text!r}: there is no Python {match['major']}.")
    return version


def highest_matching(specifier: str, available: tuple[str, ...], source: str) -> str:
    """The newest known Python that `specifier` admits, preferring ones this machine has."""
    try:
        allowed = SpecifierSet(specifier)
    except InvalidSpecifier:
        raise UnsupportedRepository(f"{source}: {specifier!r} is not a valid version specifier.") from None
    matching = [
        v
        for v in KNOWN_PYTHONS
        if allowed.contains(f"{v}.0", prereleases=True) or allowed.contains(f"{v}.99", prereleases=True)
    ]
    if not matching:
        raise UnsupportedRepository(f"{source}: no Python in {', '.join(KNOWN_PYTHONS)} matches {specifier!r}.")
    installed = [v for v in matching if v in available]
    return (installed or matching)[-1]


def _refuse_container_files(config_dir: Path, repo_dir: Path, builder: BuilderAbilities) -> None:
    for filename, needs in CONTAINER_FILES.items():
        if filename not in builder.honours and (config_dir / filename).is_file():
            where = (config_dir / filename).relative_to(repo_dir)
            raise UnsupportedRepository(
                f"{where} asks for {needs}, which {builder.name} cannot install; {builder.elsewhere}."
            )
    runtime = config_dir / "runtime.txt"
    # A builder that installs R packages (install.R) is one that installs R.
    if "install.R" not in builder.honours and _runtime_text(config_dir).startswith("r-"):
        raise UnsupportedRepository(
            f"{runtime.relative_to(repo_dir)} asks for R, which {builder.name} cannot install; {builder.elsewhere}."
        )


@dataclass(frozen=True)
class _EnvironmentFile:
    python: str | None
    pip_requirements: tuple[str, ...]
    conda_specs: tuple[str, ...]  # everything but python and pip
    python_specs: tuple[str, ...]  # the file's python match specs, as written
    channels: tuple[str, ...]


def _read_environment(
    environment: Path, repo_dir: Path, available: tuple[str, ...], builder: BuilderAbilities
) -> _EnvironmentFile:
    """environment.yml as repo2docker reads it (`name` ignored); refused if `builder` has no conda."""
    where = environment.relative_to(repo_dir)
    try:
        content = yaml.safe_load(environment.read_text()) or {}
    except yaml.YAMLError as error:
        raise UnsupportedRepository(f"{where} is not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise UnsupportedRepository(f"{where} must be a mapping with `dependencies` (and `channels`).")
    python, pip_requirements, conda_specs, python_specs = None, [], [], []
    for dependency in content.get("dependencies") or []:
        if isinstance(dependency, dict) and "pip" in dependency:
            # Each line as pip reads a requirements file: `-r file` and `-e .` are two arguments.
            for requirement in dependency["pip"] or []:
                pip_requirements.extend(shlex.split(str(requirement), comments=True))
            continue
        name = str(dependency).split("::")[-1].strip()
        match = _CONDA_PYTHON_RE.match(name)
        if match:
            python_specs.append(name)  # kept whole for the solver: python=3.10.4 pins the patch release
            version = (match["version"] or "").rstrip(".*")
            if version and match["op"] in (None, "=", "=="):
                python = ".".join(version.split(".")[:2])
            elif version:
                python = highest_matching(f"{match['op']}{version}", available, environment.name)
        elif re.split(r"[=<>~! ]", name, maxsplit=1)[0] != "pip":
            conda_specs.append(str(dependency).strip())
    if conda_specs and not builder.conda:
        listed = ", ".join(conda_specs[:5]) + (" ..." if len(conda_specs) > 5 else "")
        raise UnsupportedRepository(
            f"{where} asks for conda packages ({listed}), which {builder.name} "
            f"cannot install (it honours only python and the pip section); {builder.elsewhere}."
        )
    channels = tuple(str(c) for c in content.get("channels") or [])
    return _EnvironmentFile(python, tuple(pip_requirements), tuple(conda_specs), tuple(python_specs), channels)


def apt_packages(config_dir: Path) -> tuple[str, ...]:
    """apt.txt's packages as repo2docker reads it: one a line, `#` comments and blank lines skipped."""
    apt = config_dir / "apt.txt"
    if not apt.is_file():
        return ()
    packages = []
    for line in apt.read_text().splitlines():
        package = line.split("#", 1)[0].strip()
        if not package:
            continue
        # Each name becomes an apt-get argument in a RUN line: refuse anything that is not a package name.
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.:=~_-]*", package):
            raise UnsupportedRepository(f"apt.txt: {package!r} is not a Debian package name.")
        packages.append(package)
    return tuple(packages)


def _installable_pyproject(repo_dir: Path) -> bool:
    """repo2docker installs a root pyproject.toml only with both `[project]` and `[build-system]`."""
    pyproject = repo_dir / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        content = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UnsupportedRepository(f"pyproject.toml is not valid TOML: {error}") from None
    return "project" in content and "build-system" in content


def _requires_python(repo_dir: Path, runtime: str | None, available: tuple[str, ...]) -> str | None:
    """The Python of a root pyproject.toml's requires-python; a runtime.txt Python it excludes is an error
    (repo2docker refuses that too)."""
    pyproject = repo_dir / "pyproject.toml"
    if not pyproject.is_file():
        return runtime
    try:
        specifier = (tomllib.loads(pyproject.read_text()).get("project") or {}).get("requires-python")
    except tomllib.TOMLDecodeError as error:
        raise UnsupportedRepository(f"pyproject.toml is not valid TOML: {error}") from None
    if not specifier:
        return runtime
    if runtime is None:
        return highest_matching(specifier, available, "pyproject.toml requires-python")
    try:
        admitted = SpecifierSet(specifier).contains(runtime, prereleases=True)
    except InvalidSpecifier:
        raise UnsupportedRepository(
            f"pyproject.toml requires-python: {specifier!r} is not a valid version specifier."
        ) from None
    if not admitted:
        raise UnsupportedRepository(
            f"runtime.txt asks for Python {runtime}, which pyproject.toml's requires-python {specifier!r} "
            "excludes (repo2docker refuses this too): make the two agree."
        )
    return runtime


def script_command(script: Path) -> tuple[str, ...]:
    """How repo2docker runs postBuild (`./postBuild`): by its shebang when it has one, else with bash."""
    with script.open("rb") as opened:
        has_shebang = opened.read(2) == b"#!"
    return (str(script),) if has_shebang else ("bash", str(script))


def plan_build(
    repo_dir: Path, default_python: str, available: tuple[str, ...], builder: BuilderAbilities = LOCAL_BUILDER
) -> BuildPlan:
    """What repo2docker would install for this repository, as steps `builder` can run.

    `available` lists the Pythons (X.Y) this machine (or base image) has, to choose among for version ranges.
    """
    config_dir = find_config_dir(repo_dir)
    at_root = config_dir == repo_dir
    if "Dockerfile" in builder.honours and (config_dir / "Dockerfile").is_file():
        # repo2docker's Dockerfile build pack: the Dockerfile alone makes the image, no other file is read.
        return BuildPlan(config_dir=config_dir, python_version=default_python, kind="dockerfile")
    _refuse_container_files(config_dir, repo_dir, builder)
    kind = buildpack_kind(repo_dir, config_dir)
    r = r_packages(repo_dir, config_dir) if kind == "r" and "install.R" in builder.honours else None
    environment = config_dir / "environment.yml"
    install_r = config_dir / "install.R"
    if kind == "conda" and install_r.is_file() and not builder.r_beside_conda:
        # repo2docker's conda build pack gives R from the environment's channels and never runs install.R.
        raise UnsupportedRepository(
            f"{install_r.relative_to(repo_dir)} beside {environment.relative_to(repo_dir)} runs only in an R "
            f"repository: add runtime.txt `r-<YYYY-MM-DD>` (the CRAN snapshot date) for {builder.name} to install "
            f"R beside the conda environment and run it; {builder.elsewhere}."
        )
    python = runtime_python(config_dir)
    installs: list[InstallStep] = []
    server_requirements: Path | None = None
    conda: CondaEnvironment | None = None

    if environment.is_file():
        read = _read_environment(environment, repo_dir, available, builder)
        python = python or read.python
        if read.conda_specs:
            conda = CondaEnvironment(
                str(environment.relative_to(repo_dir)),
                read.channels,
                (f"python {python or default_python}.*", *read.python_specs, *read.conda_specs),
            )
        if read.pip_requirements:
            # As pip runs in conda: relative paths are relative to environment.yml's folder.
            installs.append(
                InstallStep("installing the pip section of environment.yml", read.pip_requirements, config_dir)
            )
    elif (config_dir / "Pipfile").is_file() or (config_dir / "Pipfile.lock").is_file():
        pipfile_python, args, source = pipfile_plan(config_dir, repo_dir)
        python = python or pipfile_python
        if args:
            # As pipenv reads them: paths are relative to the Pipfile's folder.
            installs.append(InstallStep(f"installing {source}", tuple(args), config_dir))
    else:
        requirements = config_dir / "requirements.txt"
        if requirements.is_file():
            installs.append(InstallStep(f"installing {requirements.relative_to(repo_dir)}", ("-r", str(requirements))))
        if at_root and ((repo_dir / "setup.py").is_file() or _installable_pyproject(repo_dir)):
            installs.append(InstallStep("installing the repository (pip install .)", (".",)))
        if at_root:
            python = _requires_python(repo_dir, python, available)
        if (config_dir / "requirements3.txt").is_file():
            server_requirements = config_dir / "requirements3.txt"

    def script(name: str) -> Path | None:
        path = config_dir / name
        return path if path.is_file() else None

    python_version = python or default_python
    server_installs: tuple[InstallStep, ...] = ()
    if python_version in LEGACY_KERNEL_PYTHONS and server_requirements is not None:
        where = server_requirements.relative_to(repo_dir)
        server_installs = (
            InstallStep(f"installing {where} into the server's environment", ("-r", str(server_requirements))),
        )
    return BuildPlan(
        config_dir=config_dir,
        kind=kind,
        apt_packages=apt_packages(config_dir) if "apt.txt" in builder.honours else (),
        python_version=python_version,
        installs=tuple(installs),
        post_build=script("postBuild"),
        start=script("start"),
        conda=conda,
        server_installs=server_installs,
        r=r,
    )
