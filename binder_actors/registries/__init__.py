"""Image registries: where built images live, behind one small Protocol picked by config."""

from __future__ import annotations

from typing import Protocol


class ImageRegistry(Protocol):
    async def exists(self, image: str) -> bool:
        """True when the image is complete and launchable; never raises for "not found"."""
        ...

    async def images(self) -> list[str]:
        """Every complete image (a registry that does not offer listing may answer [])."""
        ...
