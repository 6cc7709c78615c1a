"""The Docker Engine's local images as the registry (BINDER_REGISTRY=docker, implied by BINDER_BUILDER=docker).

An image exists once `docker build` has tagged it, so a tag is the whole truth; listing goes by label.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from docker.errors import ImageNotFound

from binder_actors.docker_engine import IMAGE_LABEL, engine_client


class DockerEngineRegistry:
    def __init__(self, client_factory: Callable[[], Any] = engine_client) -> None:
        self._client_factory = client_factory
        self._client: Any = None

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
