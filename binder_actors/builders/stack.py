"""The Jupyter server stack every image gets, whichever builder makes it: its requirements, its trim, and how
an environment runs it."""

from __future__ import annotations

from importlib.metadata import version as installed_version
from pathlib import Path

from binder_actors.builders import BuildFailed

# jsonschema imports rfc3987-syntax when present, which builds a grammar for 1.8 s on every server
# start; format checks of IRIs are not worth that, so builders uninstall it after the stack.
TRIMMED_PACKAGES = ("rfc3987-syntax",)


def server_stack() -> list[str]:
    """The requirements of the server stack, matching the hub that spawns its servers."""
    return [
        # The hub's own version where the Python allows it, else the newest that runs.
        f"jupyterhub>=4,<={installed_version('jupyterhub')}",
        "jupyterlab>=4,<5",
        "notebook>=7,<8",
        "ipykernel>=6",
    ]


STACK_PTH = "_binder_server_stack.pth"


def site_packages(env_dir: Path) -> Path:
    found = sorted((env_dir / "lib").glob("python*/site-packages"))
    if not found:
        raise BuildFailed(f"No site-packages in {env_dir}: the environment was not created.")
    return found[0]


def attach_stack(env_dir: Path, stack_site: str) -> None:
    """Run the stack from the environment at `env_dir`: `stack_site` (where the stack's site-packages is when
    the environment runs) on its path after its own packages, so the repository's win, and
    `jupyterhub-singleuser` in its bin, run by its interpreter."""
    (site_packages(env_dir) / STACK_PTH).write_text(f"import site; site.addsitedir({stack_site!r})\n")
    wrapper = env_dir / "bin" / "jupyterhub-singleuser"
    wrapper.write_text('#!/bin/sh\nexec "$(dirname "$0")/python" -m jupyterhub.singleuser "$@"\n')
    wrapper.chmod(0o755)
