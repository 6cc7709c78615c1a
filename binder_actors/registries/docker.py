"""The Docker Engine's local images as the registry (BINDER_REGISTRY=docker, implied by BINDER_BUILDER=docker).

An image exists once `docker build` has tagged it, so a tag is the whole truth; listing goes by label.
An image's size for the budget is what only it holds (the engine's Size - SharedSize): the base image and
the Jupyter stack layer its builds share are not counted, so no layer is counted twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from docker.errors import ImageNotFound

from binder_actors.docker_engine import IMAGE_LABEL, engine_client
from binder_actors.registries import StoredImage


class DockerEngineRegistry:
    def __init__(self, client_factory: Callable[[], Any] = engine_client, image_prefix: str = "") -> None:
        self._client_factory = client_factory
        self._client: Any = None
        # The budget's store: this deployment's images (BINDER_IMAGE_PREFIX), not another's in the same engine.
        self.image_prefix = image_prefix

    def _engine(self) -> Any:
        # Made on first use: ImageCache starts, and answers with the reason, while dockerd is down.
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _exists(self, image: str) -> bool:
        try:
            self._engine().images.get(image)
        except ImageNotFound:
            return False
        return True

    async def exists(self, image: str) -> bool:
        """True when the engine has the tag `image` (name:tag, as docker build tagged it)."""
        return await asyncio.to_thread(self._exists, image)

    def _images(self) -> list[str]:
        found = self._engine().images.list(filters={"label": IMAGE_LABEL})
        return sorted({tag for image in found for tag in image.tags if tag == image.labels.get(IMAGE_LABEL)})

    async def images(self) -> list[str]:
        """Every image the docker builder made and that is still tagged."""
        return await asyncio.to_thread(self._images)

    def stored_images(self) -> list[StoredImage]:
        """Every image the docker builder made under this deployment's prefix, with the bytes of its own
        layers (from the engine's disk usage report)."""
        usage = self._engine().api.df().get("Images") or []
        found = []
        for entry in usage:
            image = (entry.get("Labels") or {}).get(IMAGE_LABEL)
            if image and image.startswith(self.image_prefix) and image in (entry.get("RepoTags") or []):
                own = max(0, int(entry.get("Size") or 0) - max(0, int(entry.get("SharedSize") or 0)))
                found.append(StoredImage(image, own, float(entry.get("Created") or 0)))
        return sorted(found, key=lambda stored: stored.image)

    def remove_image(self, image: str) -> None:
        """Untag and delete the image with its own untagged layers; layers other images use stay.
        The engine refuses (APIError) while a container, even a stopped one, uses it."""
        try:
            self._engine().api.remove_image(image)
        except ImageNotFound:
            return
