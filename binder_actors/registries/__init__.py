"""Image registries: where built images live, behind one small Protocol picked by config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class ImageRegistry(Protocol):
    async def exists(self, image: str) -> bool:
        """True when the image is complete and launchable; never raises for "not found"."""
        ...

    async def images(self) -> list[str]:
        """Every complete image (a registry that does not offer listing may answer [])."""
        ...


@dataclass(frozen=True)
class StoredImage:
    """One image in a store: its name, the bytes removing it frees, when it was built (epoch seconds)."""

    image: str
    size: int
    built_at: float


@runtime_checkable
class PrunableStore(Protocol):
    """A registry whose images live on this machine's disk (the local store, the Docker Engine)."""

    def stored_images(self) -> list[StoredImage]:
        """Every complete image with its size; blocking (called in a thread)."""
        ...

    def remove_image(self, image: str) -> None:
        """Remove the image; it no longer exists once this returns. Blocking (called in a thread)."""
        ...
