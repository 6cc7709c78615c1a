"""The local builder: one uv environment per image, no containers (the embedded default).

It honours repo2docker's Python-level files; what needs a container fails the build with a
sentence naming the file and the backend that supports it. The Jupyter server stack is one shared
environment per Python version, put on each image's path after the image's own packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
from collections import deque
from importlib.metadata import version as installed_version
from pathlib import Path

from binder_actors.builders import BuildFailed, BuildRequest, Emit
from binder_actors.config import BinderConfig
from binder_actors.events import progress
from binder_actors.providers.git import git_environment
from binder_actors.registries.local import LocalImage, LocalImageStore

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 40
STACK_MARKER = ".complete"
STACK_PTH = "_binder_server_stack.pth"

# Files repo2docker supports that need a container runtime, and which backend to use instead.
CONTAINER_ONLY_FILES = {
    "Dockerfile": "a Dockerfile",
    "apt.txt": "Debian packages (apt.txt)",
    "install.R": "R packages (install.R)",
    "DESCRIPTION": "an R package (DESCRIPTION)",
    "Project.toml": "Julia packages (Project.toml)",
    "REQUIRE": "Julia packages (REQUIRE)",
    "default.nix": "nix (default.nix)",
    "environment.yml": "a conda environment (environment.yml)",
    "Pipfile": "a Pipfile",
    "Pipfile.lock": "a Pipfile",
}
_RUNTIME_RE = re.compile(r"^python-(\d+\.\d+)$")


def find_config_dir(repo_dir: Path) -> Path:
    """repo2docker's rule: `.binder/`, then `binder/`, then the repository root."""
    dot_binder, binder = repo_dir / ".binder", repo_dir / "binder"
    if dot_binder.is_dir() and binder.is_dir():
        raise BuildFailed("The repository has both binder/ and .binder/ folders: keep only one.")
    if dot_binder.is_dir():
        return dot_binder
    return binder if binder.is_dir() else repo_dir


def requested_python(config_dir: Path, default: str) -> str:
    runtime = config_dir / "runtime.txt"
    if not runtime.is_file():
        return default
    text = runtime.read_text().strip()
    match = _RUNTIME_RE.match(text)
    if not match:
        raise BuildFailed(
            f"runtime.txt says {text!r}; the local builder understands `python-X.Y`, e.g. python-3.11."
        )
    return match[1]


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


def server_environment(image: LocalImage, home: Path) -> dict[str, str]:
    """The environment a server or command of `image` runs with (PATH and Jupyter's search paths)."""
    stack_share = image.stack_dir / "share" / "jupyter"
    path = [image.env_dir / "bin", home / ".local" / "bin", image.repo_dir / ".local" / "bin"]
    return {
        "PATH": os.pathsep.join([*map(str, path), os.environ.get("PATH", "/usr/bin:/bin")]),
        "VIRTUAL_ENV": str(image.env_dir),
        "JUPYTER_PATH": str(stack_share),
        "JUPYTER_CONFIG_PATH": str(image.stack_dir / "etc" / "jupyter"),
        "JUPYTERLAB_DIR": str(stack_share / "lab"),
        "REPO_DIR": str(home),
        "HOME": str(home),
    }


class LocalBuildExecutor:
    """Builds into BINDER_DATA_DIR/images/<image>; the image is complete once its marker exists."""

    def __init__(self, config: BinderConfig, store: LocalImageStore) -> None:
        self.config = config
        self.store = store
        self.stacks_dir = config.data_dir / "stacks"
        self._stack_locks: dict[str, asyncio.Lock] = {}

    def cleanup_incomplete(self) -> list[str]:
        removed = []
        for folder in self.store.incomplete():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
        for partial in self.stacks_dir.glob("*.partial") if self.stacks_dir.is_dir() else []:
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial.name)
        return removed

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        target = self.store.path_for(request.image)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            await asyncio.wait_for(self._build_into(target, request, emit), self.config.build_timeout)
        except asyncio.TimeoutError:
            shutil.rmtree(target, ignore_errors=True)
            raise BuildFailed(
                f"The build took longer than BINDER_BUILD_TIMEOUT={self.config.build_timeout}s "
                "and was stopped."
            ) from None
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    async def _build_into(self, target: Path, request: BuildRequest, emit: Emit) -> None:
        resolved = request.resolved
        repo_dir, env_dir = target / "repo", target / "env"
        await emit(progress("fetching", f"Fetching {resolved.repo_url} at {resolved.resolved_ref}"))
        git_env = git_environment(self.config.allow_local_repos)
        await self._run(
            ["git", "clone", "--quiet", "--", resolved.repo_url, str(repo_dir)],
            emit,
            phase="fetching",
            env=git_env,
            what="git clone",
        )
        await self._run(
            ["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", resolved.resolved_ref],
            emit,
            phase="fetching",
            env=git_env,
            cwd=repo_dir,
            what=f"git checkout {resolved.resolved_ref}",
        )

        config_dir = find_config_dir(repo_dir)
        for filename, needs in CONTAINER_ONLY_FILES.items():
            if (config_dir / filename).exists():
                raise BuildFailed(
                    f"{(config_dir / filename).relative_to(repo_dir)}: {needs} cannot be installed "
                    "by the local builder; run binder-actors with BINDER_BUILDER=docker or on "
                    "Kubernetes for this repository."
                )
        python_version = requested_python(config_dir, self.config.python_version)
        interpreter = find_python(python_version)
        if interpreter is None:
            raise BuildFailed(
                f"Python {python_version} is not installed on this machine; install it "
                "(for example with pyenv) or ask for another version in runtime.txt."
            )
        stack_dir = await self._ensure_stack(python_version, interpreter, emit)

        await emit(progress("building", f"Creating a Python {python_version} environment"))
        await self._run(
            [*_uv(), "venv", "--quiet", "--python", str(interpreter), str(env_dir)], emit, what="uv venv"
        )
        site_packages = _site_packages(env_dir)
        stack_site = _site_packages(stack_dir)
        # Appended after the environment's own site-packages: the repository's packages win.
        (site_packages / STACK_PTH).write_text(f"import site; site.addsitedir({str(stack_site)!r})\n")
        _write_singleuser_wrapper(env_dir)

        install = [
            *_uv(),
            "pip",
            "install",
            "--compile-bytecode",
            "--python",
            str(env_dir / "bin" / "python"),
        ]
        requirements = config_dir / "requirements.txt"
        if requirements.is_file():
            await self._run(
                [*install, "-r", str(requirements)],
                emit,
                cwd=repo_dir,
                what=f"installing {requirements.relative_to(repo_dir)}",
            )
        if config_dir == repo_dir and (
            (repo_dir / "setup.py").is_file() or (repo_dir / "pyproject.toml").is_file()
        ):
            await self._run([*install, "."], emit, cwd=repo_dir, what="installing the repository")
        post_build = config_dir / "postBuild"
        if post_build.is_file():
            post_build.chmod(post_build.stat().st_mode | 0o111)
            image = self._image(request, target, python_version, stack_dir)
            await self._run(
                ["bash", str(post_build)],
                emit,
                cwd=repo_dir,
                what="postBuild",
                env={**os.environ, **server_environment(image, repo_dir)},
            )
        self.store.record(self._image(request, target, python_version, stack_dir))
        log.info("build done image=%s build=%s", request.image, request.build_name)

    def _image(self, request: BuildRequest, target: Path, python: str, stack: Path) -> LocalImage:
        return LocalImage(
            image=request.image,
            path=target,
            repo_url=request.resolved.repo_url,
            resolved_ref=request.resolved.resolved_ref,
            python_version=python,
            stack_dir=stack,
        )

    async def _ensure_stack(self, python_version: str, interpreter: Path, emit: Emit) -> Path:
        """The shared Jupyter server stack for one Python version, installed once."""
        stack_dir = self.stacks_dir / f"py{python_version}"
        lock = self._stack_locks.setdefault(python_version, asyncio.Lock())
        async with lock:
            if (stack_dir / STACK_MARKER).is_file():
                return stack_dir
            await emit(
                progress("building", f"Installing the Jupyter server for Python {python_version} (once)")
            )
            partial = stack_dir.with_name(stack_dir.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(stack_dir, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            try:
                await self._run(
                    [*_uv(), "venv", "--quiet", "--relocatable", "--python", str(interpreter), str(partial)],
                    emit,
                    what="uv venv (server)",
                )
                await self._run(
                    [
                        *_uv(),
                        "pip",
                        "install",
                        "--compile-bytecode",
                        "--python",
                        str(partial / "bin" / "python"),
                        f"jupyterhub=={installed_version('jupyterhub')}",
                        "jupyterlab>=4,<5",
                        "notebook>=7,<8",
                        "ipykernel>=6",
                    ],
                    emit,
                    what="installing the Jupyter server",
                )
                # jsonschema imports rfc3987-syntax when present, which builds a grammar for
                # 1.8 s on every server start; format checks of IRIs are not worth that.
                await self._run(
                    [
                        *_uv(),
                        "pip",
                        "uninstall",
                        "--python",
                        str(partial / "bin" / "python"),
                        "rfc3987-syntax",
                    ],
                    emit,
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
        *,
        what: str,
        phase: str = "building",
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Run one build step, streaming its output as events; BuildFailed with its tail if it fails."""
        step_env = dict(env or os.environ)
        step_env.update({"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=step_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        try:
            assert process.stdout is not None
            async for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    tail.append(line)
                    await emit(progress(phase, line))  # type: ignore[arg-type]
            code = await process.wait()
        except BaseException:
            _kill_group(process)
            await process.wait()
            raise
        if code != 0:
            raise BuildFailed(f"{what} failed (exit code {code}).", list(tail))


def _uv() -> list[str]:
    """uv from this Python's environment (where pip put it), else from PATH."""
    beside = Path(sys.executable).with_name("uv")
    return [str(beside) if beside.exists() else "uv"]


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)


def _site_packages(env_dir: Path) -> Path:
    found = sorted((env_dir / "lib").glob("python*/site-packages"))
    if not found:
        raise BuildFailed(f"No site-packages in {env_dir}: the environment was not created.")
    return found[0]


def _write_singleuser_wrapper(env_dir: Path) -> None:
    """`jupyterhub-singleuser` in the image's bin, run by the image's interpreter."""
    wrapper = env_dir / "bin" / "jupyterhub-singleuser"
    wrapper.write_text('#!/bin/sh\nexec "$(dirname "$0")/python" -m jupyterhub.singleuser "$@"\n')
    wrapper.chmod(0o755)
