"""The Jupyter server stack every image gets, whichever builder makes it: its requirements and its trim."""

from __future__ import annotations

from importlib.metadata import version as installed_version

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
