"""ImageCache: does this image exist? Bounded TTL caches of hits and misses over the registry, the source of truth."""

from __future__ import annotations

import ray

from binder_actors.caching import TTLCache
from binder_actors.config import BinderConfig
from binder_actors.logs import setup_logging
from binder_actors.models import ImageCacheStats, RegistryHealth
from binder_actors.registries import ImageRegistry
from binder_actors.registries.local import LocalImageStore
from binder_actors.registries.oci import OCIRegistry


def _docker_registry(image_prefix: str) -> ImageRegistry:
    from binder_actors.registries.docker import DockerEngineRegistry  # the docker SDK only where it is used

    return DockerEngineRegistry(image_prefix=image_prefix)


def make_registry(config: BinderConfig) -> ImageRegistry:
    """The registry the config names (BINDER_REGISTRY)."""
    registries = {
        "local": lambda: LocalImageStore(config.images_dir),
        "oci": lambda: OCIRegistry(
            config.registry.url,
            username=config.registry.username,
            password=config.registry.password.get_secret_value(),
            token_url=config.registry.token_url,
            timeout=config.upstream_timeout,
        ),
        "docker": lambda: _docker_registry(config.registry.image_prefix),
    }
    return registries[config.registry.kind]()


class ImageCache:
    def __init__(self, config: BinderConfig) -> None:
        setup_logging()
        self.config = config
        self.registry = make_registry(config)
        self._found: TTLCache[str, bool] = TTLCache(config.registry.cache_size, config.registry.cache_hit_ttl)
        self._missing: TTLCache[str, bool] = TTLCache(config.registry.cache_size, config.registry.cache_miss_ttl)
        self.hits = 0
        self.misses = 0

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def exists(self, image: str) -> bool:
        """True when the image is built and launchable; never raises for "not found"."""
        if self._found.get(image):  # get, not `in`: a lookup counts as a use for the LRU bound
            self.hits += 1
            return True
        if self._missing.get(image):
            self.misses += 1
            return False
        return await self.refresh(image)

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def refresh(self, image: str) -> bool:
        """Ask the registry now, whatever is cached (BuildScheduler calls it once a build is done)."""
        found = await self.registry.exists(image)
        if image in self._found:
            # Found by a refresh that ran while this one waited (a build finished): a later answer.
            found = True
        if found:
            self._missing.pop(image, None)
            self._found[image] = True
            self.hits += 1
        else:
            self._missing[image] = True
            self.misses += 1
        return found

    @ray.method(max_task_retries=-1)  # idempotent: retried across actor restarts
    async def forget(self, images: list[str]) -> None:
        """Images the store's budget removed: the next lookup asks the registry (and finds them missing)."""
        for image in images:
            self._found.pop(image, None)
            self._missing.pop(image, None)

    async def images(self) -> list[str]:
        """Every complete image in the registry."""
        return await self.registry.images()

    async def image_prefix(self) -> str:
        return self.config.registry.image_prefix

    async def stats(self) -> ImageCacheStats:
        return ImageCacheStats(hits=self.hits, misses=self.misses, known=len(self._found), missing=len(self._missing))

    async def health(self) -> RegistryHealth:
        """Whether the registry answers at all: "not found" for a made-up image is an answer."""
        try:
            await self.registry.exists(f"{self.config.registry.image_prefix}binder-health-check:0")
        except Exception as error:  # health reports the failure; it must not raise it
            return RegistryHealth(ok=False, registry=self.config.registry.kind, error=str(error))
        return RegistryHealth(ok=True, registry=self.config.registry.kind)
