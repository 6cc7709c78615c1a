"""The Python client over the actor handles, and the flow of one launch as an async event stream.

The HTTP ingress is a thin adapter over `launch_events`; Python programs use `BinderClient`.
Both yield the same `BinderEvent` models, ending in `ready` or `failed`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import ray
from ray.exceptions import RayActorError, RayTaskError

from binder_actors.actors import ActorHandles, get_actors
from binder_actors.actors.ref_resolver import ResolveRequest
from binder_actors.actors.session_manager import LaunchRequest, Session
from binder_actors.builders import BuildRequest
from binder_actors.events import BinderEvent, failed
from binder_actors.names import build_name, image_name
from binder_actors.providers import InvalidSpec, ResolvedRef, ResolveError, get_provider

log = logging.getLogger(__name__)

RETRY_MESSAGE = "binder-actors restarted a part of itself during your launch; please retry."


class LaunchFailed(Exception):
    """A launch that ended in a `failed` event; the message is the event's."""

    def __init__(self, event: BinderEvent) -> None:
        super().__init__(event.message.rstrip("\n"))
        self.event = event


def _user_error(error: BaseException) -> BinderEvent | None:
    """The failed event for an error the user can act on, or None for an internal one."""
    cause = error.cause if isinstance(error, RayTaskError) else error
    if isinstance(cause, InvalidSpec):
        return failed(str(cause), 400)
    if isinstance(cause, ResolveError):
        return failed(str(cause), cause.status_code)
    return None


async def launch_events(
    handles: ActorHandles,
    provider: str,
    spec: str,
    *,
    image_prefix: str = "",
    allow_local_repos: bool = False,
) -> AsyncIterator[BinderEvent]:
    """Resolve, build if needed, and launch; every outcome is an event, never an exception."""
    try:
        get_provider(provider).parse(spec, allow_local_repos=allow_local_repos)
    except InvalidSpec as error:
        yield failed(str(error), 400)
        return
    try:
        resolved: ResolvedRef = await handles.ref_resolver.resolve.remote(ResolveRequest(provider=provider, spec=spec))
        image = image_name(image_prefix, resolved.build_slug, resolved.resolved_ref)
        if await handles.image_cache.exists.remote(image):
            yield BinderEvent(phase="built", message="Found built image, launching...\n", image_name=image)
        else:
            request = BuildRequest(
                image=image,
                build_name=build_name(resolved.build_slug, resolved.resolved_ref),
                resolved=resolved,
            )
            async for ref in handles.build_scheduler.build.remote(request):
                event: BinderEvent = await ref
                yield event
                if event.phase == "failed":
                    return
        launch = LaunchRequest(
            image=image,
            resolved=resolved,
            binder_request=f"v2/{provider}/{spec}",
            binder_persistent_request=f"v2/{provider}/{resolved.persistent_spec}",
        )
        async for ref in handles.session_manager.launch.remote(launch):
            yield await ref
    except (RayTaskError, InvalidSpec, ResolveError) as error:
        event = _user_error(error)
        if event is None:
            log.exception("launch crashed spec=%s", spec)
            event = failed(RETRY_MESSAGE, 500)
        yield event
    except RayActorError:
        log.warning("an actor died during a launch spec=%s", spec)
        yield failed(RETRY_MESSAGE, 503)


class BinderClient:
    """binder-actors from Python: launch repositories and list or stop sessions.

    >>> client = BinderClient.connect()
    >>> session = client.launch_sync("git", "https%3A%2F%2Fexample.org%2Frepo.git/HEAD")
    """

    def __init__(self, handles: ActorHandles, image_prefix: str = "") -> None:
        self.handles = handles
        self.image_prefix = image_prefix

    @classmethod
    def connect(cls, address: str | None = "auto", namespace: str = "binder") -> BinderClient:
        """Join a running binder-actors (started with `make serve` or `binder-actors serve`)."""
        if not ray.is_initialized():
            try:
                ray.init(address=address, namespace=namespace, log_to_driver=False)
            except ConnectionError as error:
                raise ConnectionError(
                    "No running binder-actors found: start one with `make serve` "
                    f"(or `binder-actors serve`) first. ({error})"
                ) from None
        try:
            handles = get_actors(namespace)
        except ValueError:
            raise ConnectionError(
                f"Ray is running but binder-actors' actors are not (namespace {namespace!r}): "
                "start them with `make serve`."
            ) from None
        return cls(handles, ray.get(handles.image_cache.image_prefix.remote()))

    async def launch(self, provider: str, spec: str) -> AsyncIterator[BinderEvent]:
        """The launch's events, as the HTTP stream sends them."""
        async for event in launch_events(self.handles, provider, spec, image_prefix=self.image_prefix):
            yield event

    async def launch_session(self, provider: str, spec: str) -> BinderEvent:
        """Launch and return the `ready` event; raises LaunchFailed with the failed message."""
        async for event in self.launch(provider, spec):
            if event.phase == "ready":
                return event
            if event.phase == "failed":
                raise LaunchFailed(event)
        raise LaunchFailed(failed("The launch ended without a ready event.", 500))

    async def sessions(self) -> list[Session]:
        return await self.handles.session_manager.list_sessions.remote()

    async def stop(self, user: str) -> None:
        await self.handles.session_manager.stop.remote(user)
