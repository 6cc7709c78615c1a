"""The flow of one launch: resolve, build if needed, start a session; every outcome is an event.

The one orchestration of the service: the HTTP ingress streams it, `BinderClient` wraps it and the
benchmarks time it (through `on_stage`), so none of them re-implements a step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from ray.exceptions import RayActorError, RayTaskError

from binder_actors.actors import ActorHandles
from binder_actors.events import BinderEvent, failed
from binder_actors.models import BuildRequest, LaunchRequest, ResolveRequest
from binder_actors.names import launch_key, user_name_for_repo
from binder_actors.providers import InvalidSpec, ResolvedRef, ResolveError
from binder_actors.retry import RetryPolicy

log = logging.getLogger(__name__)

RETRY_MESSAGE = "binder-actors restarted a part of itself during your launch; please retry."
ABANDONED_CLEANUP_SECONDS = 120.0
# A stream call that fails before its first event met an actor Ray is still restarting: the call never
# started anything, and both streams are idempotent (one build per image, one launch per user), so it
# is made again, for up to about 30 s, rather than failing the launch.
_UNTIL_RESTARTED = RetryPolicy(attempts=8, first_delay=0.25, max_delay=8.0)

# A stage that just ended: the ref is resolved, then the image was found in the cache or built
# (the session's start ends with the stream's `ready` event).
LaunchStage = Literal["resolved", "found", "built"]
StageObserver = Callable[[LaunchStage], None]


def _user_error(error: BaseException) -> BinderEvent | None:
    """The failed event for an error the user can act on, or None for an internal one."""
    cause = error.cause if isinstance(error, RayTaskError) else error
    if isinstance(cause, InvalidSpec):
        return failed(str(cause), 400)
    if isinstance(cause, ResolveError):
        return failed(str(cause), cause.status_code)
    return None


async def _remove_abandoned(handles: ActorHandles, launch: LaunchRequest) -> None:
    """Stop the server and delete the user (a logged-in user's: only the server) of a launch whose
    SessionManager died (best effort)."""
    stop = handles.session_manager.stop.remote(launch.user, launch.server, owner=launch.owner or None)
    try:
        await asyncio.wait_for(stop, ABANDONED_CLEANUP_SECONDS)
    except Exception as error:  # the next SessionManager start removes what is still half-made
        log.warning("could not remove an abandoned launch user=%s: %s", launch.user, type(error).__name__)


def _ignore_stage(stage: LaunchStage) -> None:
    pass


def _ignore_resolved(resolved: ResolvedRef) -> None:
    pass


async def _events(start: Callable[[], Any]) -> AsyncIterator[BinderEvent]:
    """The events of the actor stream `start()` opens; opened again while it fails before its first event.

    Once an event has arrived, an actor's death ends the stream with its RayActorError: the work it
    had started is gone, and the caller says so.
    """

    async def first() -> tuple[Any, BinderEvent | None]:
        stream = start()
        try:
            return stream, await (await stream.__anext__())
        except StopAsyncIteration:
            return stream, None

    stream, event = await _UNTIL_RESTARTED.call(first, retry_on_error=lambda e: isinstance(e, RayActorError))
    if event is None:
        return
    yield event
    async for ref in stream:
        yield await ref


async def launch_events(
    handles: ActorHandles,
    provider: str,
    spec: str,
    *,
    image_prefix: str = "",
    build_only: bool = False,
    launch_id: str = "",
    owner: str = "",
    on_stage: StageObserver = _ignore_stage,
    on_resolved: Callable[[ResolvedRef], None] = _ignore_resolved,
) -> AsyncIterator[BinderEvent]:
    """Resolve, build if needed, and launch (unless `build_only`); every outcome is an event.

    `launch_id` names the session's hub user: launching again with the same id (a client that
    reconnected elsewhere) re-attaches to the same session instead of starting a second one.
    `owner`, a logged-in hub user (authenticated mode), gets the session as a named server of theirs,
    named from the repository and the launch id as a temporary user would be.
    `on_stage` is called as each stage ends, before its events are yielded (the benchmarks time them);
    `on_resolved` gets the resolved ref (the launch event log records it).

    Bad specs and refused ones come back from RefResolver as InvalidSpec / ResolveError and
    end the stream as a `failed` event with their message.
    """
    try:
        resolved: ResolvedRef = await handles.ref_resolver.resolve.remote(ResolveRequest(provider=provider, spec=spec))
        on_stage("resolved")
        on_resolved(resolved)
        if resolved.notice:
            yield BinderEvent(phase="waiting", message=resolved.notice)
        request = BuildRequest.for_ref(resolved, image_prefix)
        image = request.image
        if await handles.image_cache.exists.remote(image):
            on_stage("found")
            yield BinderEvent(phase="built", message="Found built image, launching...\n", image_name=image)
        else:
            async for event in _events(lambda: handles.build_scheduler.build.remote(request)):
                if event.phase == "built":
                    on_stage("built")
                yield event
                if event.phase == "failed":
                    return
        if build_only:
            return
        launch = LaunchRequest(
            image=image,
            resolved=resolved,
            binder_request=f"v2/{provider}/{spec}",
            binder_persistent_request=f"v2/{provider}/{resolved.persistent_spec}",
            user=owner or user_name_for_repo(resolved.repo_url, launch_id),
            launch_key=launch_key(launch_id),
            owner=owner,
            server=user_name_for_repo(resolved.repo_url, launch_id) if owner else "",
        )
        try:
            async for event in _events(lambda: handles.session_manager.launch.remote(launch)):
                yield event
        except RayActorError:
            # The manager died mid-launch: its successor cannot know this user is nobody's, we do.
            await _remove_abandoned(handles, launch)
            raise
    except (RayTaskError, InvalidSpec, ResolveError) as error:
        event = _user_error(error)
        if event is None:
            log.exception("launch crashed spec=%s", spec)
            event = failed(RETRY_MESSAGE, 500)
        yield event
    except RayActorError:
        log.warning("an actor died during a launch spec=%s", spec)
        yield failed(RETRY_MESSAGE, 503)
