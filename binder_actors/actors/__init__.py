"""The six long-lived actors: named, detached, in one namespace, restarted by Ray when they die."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from typing import Any

import ray
from ray.actor import ActorHandle

from binder_actors.actors.activity_monitor import ActivityMonitor
from binder_actors.actors.build_scheduler import BuildScheduler
from binder_actors.actors.image_cache import ImageCache
from binder_actors.actors.ref_resolver import RefResolver
from binder_actors.actors.server_pool import ServerPool
from binder_actors.actors.session_manager import SessionManager
from binder_actors.config import BinderConfig

ACTOR_CLASSES: dict[str, type] = {
    "RefResolver": RefResolver,
    "ImageCache": ImageCache,
    "BuildScheduler": BuildScheduler,
    "SessionManager": SessionManager,
    "ActivityMonitor": ActivityMonitor,
    "ServerPool": ServerPool,
}


@dataclass(frozen=True)
class ActorHandles:
    """Handles of the six actors of one deployment."""

    ref_resolver: ActorHandle[RefResolver]
    image_cache: ActorHandle[ImageCache]
    build_scheduler: ActorHandle[BuildScheduler]
    session_manager: ActorHandle[SessionManager]
    activity_monitor: ActorHandle[ActivityMonitor]
    server_pool: ActorHandle[ServerPool]

    def named(self) -> list[tuple[str, ActorHandle[Any]]]:
        """(field name, handle) of each actor, as health and status report them."""
        return [(field.name, getattr(self, field.name)) for field in fields(self)]


def _handles(actors: dict[str, Any]) -> ActorHandles:
    return ActorHandles(
        ref_resolver=actors["RefResolver"],
        image_cache=actors["ImageCache"],
        build_scheduler=actors["BuildScheduler"],
        session_manager=actors["SessionManager"],
        activity_monitor=actors["ActivityMonitor"],
        server_pool=actors["ServerPool"],
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
