"""The local store: built environments on disk under BINDER_DATA_DIR/images, one folder an image.

An image is complete only once its `image.json` exists; that file is written last and atomically,
so a folder without it is a build in progress or a failed one, never an image.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel

from binder_actors.names import is_valid_image_name

MARKER = "image.json"


class LocalImage(BaseModel):
    """What the spawner and `exec` need to run a built environment."""

    image: str
    path: Path
    repo_url: str
    resolved_ref: str
    python_version: str
    stack_dir: Path
    start_script: str | None = None  # relative to the repository, e.g. binder/start

    @property
    def env_dir(self) -> Path:
        return self.path / "env"

    @property
    def repo_dir(self) -> Path:
        return self.path / "repo"


class LocalImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, image: str) -> Path:
        if not is_valid_image_name(image):
            raise ValueError(f"{image!r} is not an image name.")
        return self.root / quote(image, safe="")

    def read(self, image: str) -> LocalImage | None:
        try:
            marker = self.path_for(image) / MARKER
            return LocalImage.model_validate_json(marker.read_text())
        except (OSError, ValueError):
            return None

    def record(self, built: LocalImage) -> None:
        """Mark the image complete: write image.json to a temporary name, then rename it."""
        target = built.path / MARKER
        partial = built.path / (MARKER + ".partial")
        partial.write_text(built.model_dump_json(indent=2))
        os.replace(partial, target)

    async def images(self) -> list[str]:
        return await asyncio.to_thread(self.list_images)

    def list_images(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            marker = folder / MARKER
            if marker.is_file():
                found.append(json.loads(marker.read_text())["image"])
        return found

    def incomplete(self) -> list[Path]:
        """Folders without a marker: builds that did not finish."""
        if not self.root.is_dir():
            return []
        return [f for f in self.root.iterdir() if f.is_dir() and not (f / MARKER).is_file()]

    async def exists(self, image: str) -> bool:
        try:
            return (self.path_for(image) / MARKER).is_file()
        except ValueError:
            return False
