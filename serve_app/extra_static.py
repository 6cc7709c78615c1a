"""Pure: which file of the operator's extra static folder (BinderHub's extra_static_path) a request names.

Only regular files inside the folder are served: no `..`, no symlink leading out, no folder listing.
"""

from __future__ import annotations

from pathlib import Path


def extra_static_file(folder: str, prefix: str, path: str) -> Path | None:
    """The file `path` (below the base URL) names under `prefix` (`extra_static/`), or None."""
    if not folder or not path.startswith(prefix):
        return None
    relative = path[len(prefix) :]
    if not relative or "\x00" in relative or any(part in ("", ".", "..") for part in relative.split("/")):
        return None
    root = Path(folder).resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate
