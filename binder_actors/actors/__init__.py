"""The five long-lived actors: named, detached, in one namespace, restarted by Ray when they die."""

from __future__ import annotations

import contextlib
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict

from binder_actors.actors.activity_monitor import ActivityMonitor
from binder_actors.actors.build_scheduler import BuildScheduler
from binder_actors.actors.image_cache import ImageCache
from binder_actors.actors.ref_resolver import RefResolver
from binder_actors.actors.session_manager import SessionManager
from binder_actors.config import BinderConfig

ACTOR_CLASSES: dict[str, type] = {
    "RefResolver": RefResolver,
    "ImageCache": ImageCache,
    "BuildScheduler": BuildScheduler,
    "SessionManager": SessionManager,
    "ActivityMonitor": ActivityMonitor,
}


class ActorHandles(BaseModel):
    """Handles of the five actors of one deployment."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ref_resolver: Any
    image_cache: Any
    build_scheduler: Any
    session_manager: Any
    activity_monitor: Any


def _handles(actors: dict[str, Any]) -> ActorHandles:
    return ActorHandles(
        ref_resolver=actors["RefResolver"],
        image_cache=actors["ImageCache"],
        build_scheduler=actors["BuildScheduler"],
        session_manager=actors["SessionManager"],
        activity_monitor=actors["ActivityMonitor"],
    )


def ensure_actors(config: BinderConfig) -> ActorHandles:
    """Create the actors, or return the running ones (the first creator's config wins)."""
    actors = {
        name: ray.remote(cls)
        .options(
            name=name,
            namespace=config.namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            num_cpus=0,
            max_concurrency=1000,
        )
        .remote(config)
        for name, cls in ACTOR_CLASSES.items()
    }
    return _handles(actors)


def get_actors(namespace: str = "binder") -> ActorHandles:
    """Look up the running actors; raises ValueError when binder-actors is not running."""
    return _handles({name: ray.get_actor(name, namespace=namespace) for name in ACTOR_CLASSES})


def kill_actors(namespace: str = "binder") -> None:
    for name in ACTOR_CLASSES:
        with contextlib.suppress(ValueError):  # not running: nothing to stop
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
