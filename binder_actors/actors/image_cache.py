"""ImageCache: does this image exist? A positive cache over the registry, the source of truth."""

from __future__ import annotations

import ray

from binder_actors.config import BinderConfig
from binder_actors.logs import setup_logging
from binder_actors.registries import ImageRegistry
from binder_actors.registries.local import LocalImageStore


def make_registry(config: BinderConfig) -> ImageRegistry:
    registries = {"local": lambda: LocalImageStore(config.images_dir)}
    return registries[config.builder]()


class ImageCache:
    def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.registry = make_registry(config)
        self._known: set[str] = set()
        self.hits = 0
        self.misses = 0

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def exists(self, image: str) -> bool:
        """True when the image is built and launchable; never raises for "not found"."""
        if image in self._known or await self.registry.exists(image):
            self._known.add(image)
            self.hits += 1
            return True
        self.misses += 1
        return False

    async def images(self) -> list[str]:
        """Every complete image in the registry."""
        return self.registry.images()

    async def image_prefix(self) -> str:
        return self.config.image_prefix

    async def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "known": len(self._known)}
