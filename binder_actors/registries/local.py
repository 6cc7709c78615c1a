"""The local store: built environments on disk under BINDER_DATA_DIR/images, one folder an image.

An image is complete only once its `image.json` exists; that file is written last and atomically,
so a folder without it is a build in progress or a failed one, never an image.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel

from binder_actors.names import is_valid_image_name
from binder_actors.registries import StoredImage

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

    def stored_images(self) -> list[StoredImage]:
        """Every complete image, sized as `du` sizes its folder (the shared stacks and caches are outside it)."""
        found = []
        for folder in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            try:
                marker = folder / MARKER
                image = json.loads(marker.read_text())["image"]
                found.append(StoredImage(image, folder_bytes(folder), marker.stat().st_mtime))
            except (OSError, ValueError, KeyError):  # not an image, or removed meanwhile
                continue
        return found

    def remove_image(self, image: str) -> None:
        """The marker goes first, so the image stops existing at once; a folder left by a crash
        midway has no marker, which makes it an incomplete build that the next start-up removes."""
        folder = self.path_for(image)
        (folder / MARKER).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def folder_bytes(folder: Path) -> int:
    """Bytes that removing `folder` frees: the blocks of what is under it, symlinks not followed, and a
    hard-linked file once, only when all its links are inside (uv links packages from its cache, which keeps them).
    """
    total = 0
    files: dict[tuple[int, int], tuple[int, int]] = {}  # (device, inode) -> (bytes, links still to see)
    for directory, subfolders, names in os.walk(folder):
        for name in [*subfolders, *names]:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:  # removed meanwhile
                continue
            if info.st_nlink <= 1 or name in subfolders:  # a folder's links are its subfolders' ".."
                total += info.st_blocks * 512
                continue
            size, unseen = files.get((info.st_dev, info.st_ino), (info.st_blocks * 512, info.st_nlink))
            files[(info.st_dev, info.st_ino)] = (size, unseen - 1)
    return total + sum(size for size, unseen in files.values() if unseen <= 0)
