"""The local builder: one uv (or, for environment.yml's conda packages, py-rattler) environment per
image, no containers (the embedded default).

It runs the plan `detect.plan_build` makes from repo2docker's rules. The Jupyter server stack is
one shared environment per Python version, put on each image's path after the image's own
packages, so the repository's packages win. A Python before 3.7 gets a kernel environment beside
the server's, as in repo2docker (kernel_env.py). Every running step's process group is written to a
lock file under BINDER_DATA_DIR/builds, so a restarted scheduler can stop what a dead one left.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from binder_actors.builders import BuildFailed, Emit, kernel_env
from binder_actors.builders.conda import install_environment
from binder_actors.builders.detect import (
    KNOWN_PYTHONS,
    BuildPlan,
    UnsupportedRepository,
    plan_build,
    script_command,
)
from binder_actors.builders.fetch import fetch_checkout
from binder_actors.builders.stack import TRIMMED_PACKAGES, attach_stack, server_stack, site_packages
from binder_actors.builders.steps import kill_group, run_step, within_build_timeout
from binder_actors.config import BinderConfig
from binder_actors.events import Phase, progress
from binder_actors.models import BuildRequest
from binder_actors.registries.local import LocalImage, LocalImageStore

log = logging.getLogger(__name__)

STACK_MARKER = ".complete"


def find_python(version: str) -> Path | None:
    """An interpreter for Python `version` on this machine: PATH, pyenv, then the usual places."""
    name = f"python{version}"
    candidates: list[Path] = []
    on_path = shutil.which(name)
    if on_path and "/shims/" not in on_path:
        candidates.append(Path(on_path))
    if sys.version.startswith(version + "."):
        candidates.append(Path(sys.base_exec_prefix) / "bin" / name)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    pyenv_versions = sorted(
        (pyenv_root / "versions").glob(f"{version}.*"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")],
        reverse=True,
    )
    candidates.extend(p / "bin" / name for p in pyenv_versions)
    candidates.extend(Path(d) / name for d in ("/usr/local/bin", "/usr/bin"))
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def available_pythons() -> tuple[str, ...]:
    return tuple(v for v in KNOWN_PYTHONS if find_python(v) is not None)


class Interpreters(NamedTuple):
    """The Pythons a plan's build runs: the server's, and a kernel environment's (None unless it has one)."""

    server_python: str
    server: Path
    kernel: Path | None


def interpreters_for(plan: BuildPlan, default_python: str) -> Interpreters:
    """This machine's interpreters for the plan; refused naming a Python the machine lacks.

    A Python before 3.7 runs only the kernel, as in repo2docker: the server runs on the default Python.
    A conda environment brings its own Python, but the shared server stack is built with ours.
    """
    server_python = default_python if plan.kernel_environment else plan.python_version
    server = find_python(server_python)
    if server is None:
        where = plan.conda.source if plan.conda else "runtime.txt"
        ask = f"ask for another version in {where}"
        if plan.kernel_environment:  # the server's Python, not the one the repository asks for
            ask = "set BINDER_PYTHON_VERSION to one it has"
        raise UnsupportedRepository(
            f"Python {server_python} is not installed on this machine; install it (for example with pyenv) or {ask}."
        )
    return Interpreters(server_python, server, kernel_env.interpreter(plan, find_python(plan.python_version)))


def server_environment(image: LocalImage, home: Path) -> dict[str, str]:
    """The environment a server or command of `image` runs with (PATH and Jupyter's search paths)."""
    stack_share = image.stack_dir / "share" / "jupyter"
    # ~/.local/bin and $REPO_DIR/.local/bin are one folder here: the session's home is its repo copy.
    # The stack's commands (jupyter, jupyter-labextension...) are on PATH as in repo2docker's images,
    # after the environment's own, so its python and pip win (the stack has no pip). A kernel
    # environment's commands (python2, pip2) come right after the server environment's, as in repo2docker.
    kernel_dir = kernel_env.kernel_environment_of(image.path)
    kernel = [kernel_dir / "bin"] if kernel_dir else []
    path = [image.env_dir / "bin", *kernel, home / ".local" / "bin", image.stack_dir / "bin"]
    # Its kernelspec comes first, before the stack's own python3 (a Python 3.6 kernel takes that name).
    jupyter_path = [kernel_dir / "share" / "jupyter"] if kernel_dir else []
    return {
        "PATH": os.pathsep.join([*map(str, path), os.environ.get("PATH", "/usr/bin:/bin")]),
        "VIRTUAL_ENV": str(image.env_dir),
        "JUPYTER_PATH": os.pathsep.join(map(str, [*jupyter_path, stack_share])),
        "JUPYTER_CONFIG_PATH": str(image.stack_dir / "etc" / "jupyter"),
        "JUPYTERLAB_DIR": str(stack_share / "lab"),
        "REPO_DIR": str(home),
        "HOME": str(home),
    }


def session_command(image: LocalImage, home: Path, command: list[str]) -> list[str]:
    """`command` as the image runs it: wrapped by the repository's `start` script when it has one."""
    return [str(home / image.start_script), *command] if image.start_script else command


def run_in_image(image: LocalImage, command: list[str]) -> int:
    """Run `command` in a fresh copy of the image's repository, as a server would run, like `docker run`."""
    with tempfile.TemporaryDirectory(prefix="binder-exec-") as scratch:
        home = Path(scratch) / "home"
        shutil.copytree(image.repo_dir, home, symlinks=True)
        env = {**os.environ, **server_environment(image, home)}
        return subprocess.call(session_command(image, home, command), cwd=home, env=env)


class BuildLock:
    """BINDER_DATA_DIR/builds/<build>.json: which image a build writes and its running processes."""

    def __init__(self, path: Path, image: str) -> None:
        self.path = path
        self.image = image
        self.process_groups: list[int] = []

    def write(self) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps({"image": self.image, "process_groups": self.process_groups}))
        os.replace(partial, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def started(self, group: int) -> None:
        self.process_groups.append(group)
        self.write()

    def ended(self, group: int) -> None:
        self.process_groups.remove(group)


class LocalBuildExecutor:
    """Builds into BINDER_DATA_DIR/images/<image>; the image is complete once its marker exists."""

    def __init__(self, config: BinderConfig, store: LocalImageStore) -> None:
        self.config = config
        self.store = store
        self.stacks_dir = config.data_dir / "stacks"
        self.locks_dir = config.data_dir / "builds"
        self._stack_locks: dict[str, asyncio.Lock] = {}

    def cleanup_incomplete(self) -> list[str]:
        """Stop the processes of builds a dead scheduler left, and remove what they wrote."""
        removed = []
        for lock_path in sorted(self.locks_dir.glob("*.json")) if self.locks_dir.is_dir() else []:
            try:
                lock = json.loads(lock_path.read_text())
            except (OSError, ValueError):
                lock = {}
            for group in lock.get("process_groups", []):
                kill_group(group)
            lock_path.unlink(missing_ok=True)
            removed.append(lock_path.stem)
        for folder in self.store.incomplete():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
        for partial in self.stacks_dir.glob("*.partial") if self.stacks_dir.is_dir() else []:
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial.name)
        return removed

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        try:
            await self._build(request, emit)
        except (BuildFailed, OSError) as error:
            if not _out_of_space(error):
                raise
            free = shutil.disk_usage(self.config.data_dir).free // 2**20
            raise BuildFailed(
                f"The build ran out of disk space: BINDER_DATA_DIR ({self.config.data_dir}) has {free} MiB free. "
                "Free some space there (or remove old images), then launch again.",
                getattr(error, "log_tail", []),
            ) from None

    async def _build(self, request: BuildRequest, emit: Emit) -> None:
        target = self.store.path_for(request.image)
        shutil.rmtree(target, ignore_errors=True)
        lock = BuildLock(self.locks_dir / f"{request.build_name}.json", request.image)
        try:
            target.mkdir(parents=True)
            self.locks_dir.mkdir(parents=True, exist_ok=True)
            lock.write()
            await within_build_timeout(self._build_into(target, request, emit, lock), self.config.build_timeout)
        except UnsupportedRepository as error:
            shutil.rmtree(target, ignore_errors=True)
            raise BuildFailed(str(error)) from None
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        finally:
            lock.remove()

    async def _build_into(self, target: Path, request: BuildRequest, emit: Emit, lock: BuildLock) -> None:
        resolved = request.resolved
        repo_dir, env_dir = target / "repo", target / "env"

        async def run(command: list[str], what: str, **options: object) -> None:
            await self._run(command, emit, lock, what=what, **options)  # type: ignore[arg-type]

        await fetch_checkout(resolved, repo_dir, emit, self.config, groups=lock)

        pythons = await asyncio.to_thread(available_pythons)
        plan = plan_build(repo_dir, self.config.python_version, pythons)
        server_python, interpreter, kernel_interpreter = interpreters_for(plan, self.config.python_version)
        stack_dir = await self._ensure_stack(server_python, interpreter, emit, lock)

        if plan.conda is not None:
            # The environment's own Python runs the server and the kernel, the shared stack on its path.
            await install_environment(plan.conda, env_dir, self.config.conda, self.config.data_dir / "conda", emit)
        else:
            await emit(progress("building", f"Creating a Python {server_python} environment"))
            # --seed: pip in the environment, for `pip install` in postBuild and `%pip` in a notebook.
            await run([*_uv(), "venv", "--quiet", "--seed", "--python", str(interpreter), str(env_dir)], "uv venv")
        attach_stack(env_dir, str(site_packages(stack_dir)))

        image = self._image(request, target, plan, stack_dir)
        # No --compile-bytecode here: Python compiles what a session imports, on first import,
        # which costs far less than compiling every module of every package at build time.
        install = [*_uv(), "pip", "install", "--python", str(env_dir / "bin" / "python")]
        # The repository's packages go where its kernel runs: the server's environment, or the kernel's.
        repository_install = install
        if kernel_interpreter is not None:
            kernel = kernel_env.KernelEnvironment(target, plan.python_version, kernel_interpreter, _uv())
            repository_install = await kernel.make(server_python, run, emit)
        for step in plan.server_installs:
            await emit(progress("building", step.description.capitalize()))
            await run([*install, *step.args], step.description, cwd=step.cwd or repo_dir)
        for step in plan.installs:
            await emit(progress("building", step.description.capitalize()))
            await run([*repository_install, *step.args], step.description, cwd=step.cwd or repo_dir)
        for script in (plan.post_build, plan.start):
            if script is not None:
                script.chmod(script.stat().st_mode | 0o111)
        if plan.post_build is not None:
            await emit(progress("building", "Running postBuild"))
            await run(
                list(script_command(plan.post_build)),
                "postBuild",
                cwd=repo_dir,
                env={**os.environ, **server_environment(image, repo_dir)},
            )
        self.store.record(image)
        log.info("build done image=%s build=%s", request.image, request.build_name)

    def _image(self, request: BuildRequest, target: Path, plan: BuildPlan, stack: Path) -> LocalImage:
        repo_dir = target / "repo"
        return LocalImage(
            image=request.image,
            path=target,
            repo_url=request.resolved.repo_url,
            resolved_ref=request.resolved.resolved_ref,
            python_version=plan.python_version,
            stack_dir=stack,
            start_script=str(plan.start.relative_to(repo_dir)) if plan.start else None,
        )

    async def _ensure_stack(self, python_version: str, interpreter: Path, emit: Emit, lock: BuildLock) -> Path:
        """The shared Jupyter server stack for one Python version, installed once."""
        stack_dir = self.stacks_dir / f"py{python_version}"
        async with self._stack_locks.setdefault(python_version, asyncio.Lock()):
            if (stack_dir / STACK_MARKER).is_file():
                return stack_dir
            await emit(progress("building", f"Installing the Jupyter server for Python {python_version} (once)"))
            partial = stack_dir.with_name(stack_dir.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(stack_dir, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            python = str(partial / "bin" / "python")
            try:
                await self._run(
                    [*_uv(), "venv", "--quiet", "--relocatable", "--python", str(interpreter), str(partial)],
                    emit,
                    lock,
                    what="uv venv (server)",
                )
                await self._run(
                    [*_uv(), "pip", "install", "--compile-bytecode", "--python", python, *server_stack()],
                    emit,
                    lock,
                    what="installing the Jupyter server",
                )
                await self._run(
                    [*_uv(), "pip", "uninstall", "--python", python, *TRIMMED_PACKAGES],
                    emit,
                    lock,
                    what="trimming the Jupyter server",
                )
                (partial / STACK_MARKER).write_text("")
                os.replace(partial, stack_dir)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
        return stack_dir

    async def _run(
        self,
        command: list[str],
        emit: Emit,
        lock: BuildLock,
        *,
        what: str,
        phase: Phase = "building",
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """A build step whose process group the lock file records; uv never downloads a Python itself."""
        step_env = dict(env or os.environ)
        step_env.update({"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
        await run_step(command, emit, what=what, phase=phase, cwd=cwd, env=step_env, groups=lock)


def _out_of_space(error: BaseException) -> bool:
    """Did the build fail because the disk is full (in our code or in a build step's own words)?"""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return any("No space left on device" in line for line in getattr(error, "log_tail", []))


def _uv() -> list[str]:
    """uv from this Python's environment (where pip put it), else from PATH."""
    beside = Path(sys.executable).with_name("uv")
    return [str(beside) if beside.exists() else "uv"]
