"""The kernel environment of an old Python (before 3.7), beside the server's, as repo2docker makes it.

The server stack runs on the default Python; the notebook's kernel runs in this environment, which
holds ipykernel and the repository's packages and is registered as the server's default kernel.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from binder_actors.builders import Emit
from binder_actors.builders.detect import BuildPlan, UnsupportedRepository
from binder_actors.events import progress

KERNEL_DIR = "kernel"  # in an image's folder, beside env/ (the server's environment) and repo/
# uv makes and fills environments of Python 3.6 and newer; older ones (2.7) are made by the last
# virtualenv that can, and filled by their own pip.
UV_OLDEST = (3, 6)
OLD_PYTHON_VIRTUALENV = "virtualenv<20.22"
# A build step: (command, what it is) -> it ran, or BuildFailed.
RunStep = Callable[[list[str], str], Awaitable[None]]


def interpreter(plan: BuildPlan, found: Path | None) -> Path | None:
    """The interpreter (`found` on this machine) of `plan`'s kernel environment, None when it needs none."""
    if not plan.kernel_environment:
        return None
    version = plan.python_version
    if plan.conda is not None:
        raise UnsupportedRepository(
            f"{plan.conda.source} asks for Python {version} with conda packages: the local builder runs a "
            "Python before 3.7 only as a kernel with pip packages; ask for Python 3.8 or newer there, or build "
            "with repo2docker (on Kubernetes)."
        )
    if found is None:
        raise UnsupportedRepository(
            f"The repository asks for Python {version}, which runs as the notebook's kernel beside the server, "
            f"but this machine has no python{version}: install it with pyenv (`pyenv install {version}`; "
            f"$PYENV_ROOT/versions is searched) or put python{version} on PATH, or ask for a newer Python."
        )
    return found


def kernel_name(python_version: str) -> str:
    """ipykernel's own name for a kernel of that Python (python2, python3), as repo2docker registers it."""
    return f"python{python_version.split('.')[0]}"


def kernel_environment_of(image_dir: Path) -> Path | None:
    """The kernel environment of a built image, if it has one."""
    kernel_dir = image_dir / KERNEL_DIR
    return kernel_dir if kernel_dir.is_dir() else None


@dataclass(frozen=True)
class KernelEnvironment:
    """`image_dir`/kernel: a `python_version` environment made with this machine's `python`."""

    image_dir: Path
    python_version: str
    python: Path
    uv: list[str]

    @property
    def path(self) -> Path:
        return self.image_dir / KERNEL_DIR

    @property
    def _by_uv(self) -> bool:
        return tuple(int(part) for part in self.python_version.split(".")) >= UV_OLDEST

    def create_command(self) -> list[str]:
        """Make the environment, with pip in it (for postBuild, and for a notebook's `!pip install`)."""
        if self._by_uv:
            return [*self.uv, "venv", "--quiet", "--seed", "--python", str(self.python), str(self.path)]
        # uv runs that virtualenv on this process's Python, from PyPI the first time and from its cache after.
        return [
            *(*self.uv, "tool", "run", "--python", sys.executable, "--from", OLD_PYTHON_VIRTUALENV, "virtualenv"),
            *("--quiet", "--no-periodic-update", "--python", str(self.python), str(self.path)),
        ]

    def install_command(self) -> list[str]:
        """The prefix of a command that installs requirement arguments into the environment."""
        python = str(self.path / "bin" / "python")
        if self._by_uv:
            return [*self.uv, "pip", "install", "--python", python]
        return [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]

    def register_command(self) -> list[str]:
        """ipykernel's own installer: a kernelspec under the environment's share/jupyter, running its python."""
        return [
            *(str(self.path / "bin" / "python"), "-m", "ipykernel", "install", "--prefix", str(self.path)),
            *("--name", kernel_name(self.python_version), "--display-name", f"Python {self.python_version}"),
        ]

    def make_default_kernel(self, server_env: Path) -> None:
        """The server's default kernel (new notebooks, and notebooks naming none) is this environment's.

        Written in the server environment's own config folder (sys.prefix/etc/jupyter): only its server reads it.
        """
        config_dir = server_env / "etc" / "jupyter"
        config_dir.mkdir(parents=True, exist_ok=True)
        config = {"MultiKernelManager": {"default_kernel_name": kernel_name(self.python_version)}}
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(config, indent=1) + "\n")

    async def make(self, server_python: str, run: RunStep, emit: Emit) -> list[str]:
        """Make it, with ipykernel, registered as the default kernel; returns `install_command()`."""
        version = self.python_version
        await emit(
            progress(
                "building", f"Creating a Python {version} kernel environment (the server runs Python {server_python})"
            )
        )
        await run(self.create_command(), "creating the kernel environment")
        # No version pinned: the installer picks the newest ipykernel that declares support for this Python.
        await emit(progress("building", f"Installing ipykernel for Python {version}"))
        await run([*self.install_command(), "ipykernel"], "installing ipykernel")
        await run(self.register_command(), "registering the kernel")
        self.make_default_kernel(self.image_dir / "env")
        return self.install_command()
