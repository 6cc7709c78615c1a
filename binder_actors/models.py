"""The request and response models of the actors' methods: the Python API's types.

A client imports these without importing actor code; every actor method takes or returns them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

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

    checked: int = 0
    culled: list[str] = []
    errors: int = 0
    finished: datetime | None = None
