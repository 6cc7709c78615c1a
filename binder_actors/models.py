"""The request and response models of the actors' methods: the Python API's types.

A client imports these without importing actor code; every actor method takes or returns them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from binder_actors.names import build_name, image_name
from binder_actors.providers.base import ResolvedRef


class ResolveRequest(BaseModel):
    """A spec to resolve: RefResolver.resolve's argument."""

    provider: str
    spec: str


class BuildRequest(BaseModel):
    """One image to build from one resolved ref."""

    image: str
    build_name: str
    resolved: ResolvedRef

    @classmethod
    def for_ref(cls, resolved: ResolvedRef, image_prefix: str = "") -> BuildRequest:
        """The request for `resolved`, named as BinderHub names its image and build."""
        return cls(
            image=image_name(image_prefix, resolved.build_slug, resolved.resolved_ref),
            build_name=build_name(resolved.build_slug, resolved.resolved_ref),
            resolved=resolved,
        )


class LaunchRequest(BaseModel):
    """A session to start from a built image: SessionManager.launch's argument."""

    image: str
    resolved: ResolvedRef
    binder_request: str
    binder_persistent_request: str
    user: str = ""  # the temporary user's name, chosen by the caller so it can clean up after a crash
    # names.launch_key(launch id) of a launch that may be asked for again: only a request with the
    # same key re-attaches to the launch or gets its session (a user name is no credential).
    launch_key: str = ""
    # Authenticated mode: the logged-in hub user (then `user`) whose named server `server` this launch starts.
    owner: str = ""
    server: str = ""


class Session(BaseModel):
    """One running (or starting) Binder session, as the hub reports it."""

    user: str
    server: str = ""
    repo_url: str = ""
    image: str = ""
    url: str = ""
    ready: bool = False
    started: datetime | None = None
    last_activity: datetime | None = None


class CullReport(BaseModel):
    """What one culling sweep saw and did."""

    checked: int = 0  # users read: those without activity for the timeout (all of them with a max age)
    culled: list[str] = []
    errors: int = 0
    finished: datetime | None = None


class ResolverStats(BaseModel):
    """RefResolver's counters and the sizes of its caches."""

    upstream_calls: int  # resolutions that went upstream
    cache_hits: int  # resolutions answered from the cache
    upstream_requests: int  # HTTP requests to the providers' APIs
    cached: int  # resolved refs held
    cached_misses: int  # refs held as "not found"


class ImageCacheStats(BaseModel):
    """ImageCache's lookups and what it remembers."""

    hits: int  # lookups answered "built"
    misses: int  # lookups answered "not built"
    known: int  # images remembered as built
    missing: int  # images remembered as not built (for a short while)


class BuildSchedulerStats(BaseModel):
    """BuildScheduler's builds: started since it began, running now, waiting for a slot."""

    builds_started: int
    building: int
    queued: int


class PruneReport(BaseModel):
    """What one pass of the image store's budget removed (or, with dry_run, would remove)."""

    dry_run: bool = False
    removed: list[str] = []  # least recently launched first
    freed_bytes: int = 0
    store_bytes: int = 0  # what the store's images take after the pass
    budget_bytes: int = 0  # 0: no budget (BINDER_IMAGE_STORE_MAX_GB unset)
    in_use: list[str] = []  # images of running sessions, never removed


class CullerStatus(BaseModel):
    """ActivityMonitor's sessions culled since it began, and its last sweep."""

    culled_total: int
    last_sweep: CullReport


class HealthAnswer(BaseModel):
    """Whether a service answers, as BinderHub's health checks show it: `error` only when there is one."""

    ok: bool
    error: str | None = None

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class RegistryHealth(HealthAnswer):
    """Whether the image registry answers."""

    registry: str


class HubHealth(HealthAnswer):
    """Whether JupyterHub answers, and its version when it does."""

    version: str | None = None


class ServiceStatus(BaseModel):
    """What is running, as `binder-actors status` prints it: Ray, the hub, each actor, builds, sessions."""

    running: bool = True
    ray: str  # the Ray cluster's GCS address
    hub: HubHealth
    actors: dict[str, str]  # actor field name -> "ok" or the error asking it raised
    refs: ResolverStats
    image_cache: ImageCacheStats
    builds: BuildSchedulerStats
    building: list[str]  # builds running now, by build name
    sessions: int
    images: int
    culler: CullerStatus
