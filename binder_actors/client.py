"""The Python client over the actor handles: `BinderClient` launches through `launch.launch_events`,
the flow the HTTP ingress streams, so both yield the same `BinderEvent` models, ending in `ready` or `failed`.

    from binder_actors.client import BinderClient
    client = BinderClient.connect()
    session = client.start("http://127.0.0.1:8000/v2/git/https%3A%2F%2Fexample.org%2Frepo.git/HEAD")
    print(session.run("import sys; print(sys.version)"))
    client.stop(session)
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import ray
from pydantic import BaseModel
from ray.exceptions import RayTaskError

from binder_actors.actors import ActorHandles, get_actors
from binder_actors.events import BinderEvent, failed
from binder_actors.kernel import run_code
from binder_actors.launch import launch_events
from binder_actors.links import parse_binder_url
from binder_actors.models import CullReport, PruneReport, ResolveRequest, ServiceStatus, Session
from binder_actors.providers import ResolvedRef

T = TypeVar("T")

NO_READY = "The launch ended without a ready event."


class LaunchFailed(Exception):
    """A launch that ended in a `failed` event; the message is the event's."""

    def __init__(self, event: BinderEvent) -> None:
        super().__init__(event.message.rstrip("\n"))
        self.event = event


class LaunchedSession(BaseModel):
    """A running session, as a launch ends: its server's URL and token, and the Binder fields."""

    user: str
    url: str
    token: str
    server: str = ""  # a logged-in user's named server (authenticated mode)
    image: str
    repo_url: str
    binder_ref_url: str
    binder_request: str
    binder_persistent_request: str
    redirect_path: str = ""

    @property
    def browser_url(self) -> str:
        """The URL to open in a browser: the landing path, with the token."""
        return f"{self.url}{self.redirect_path}{'&' if '?' in self.redirect_path else '?'}token={self.token}"

    def run(self, code: str, timeout: float = 120) -> str:
        """Run `code` in a new kernel of this session and return what it printed."""
        return run_code(self.url, self.token, code, timeout)

    @classmethod
    def from_ready(cls, event: BinderEvent, redirect_path: str) -> LaunchedSession:
        assert event.url and event.token
        user, _, server = event.url.split("/user/", 1)[1].strip("/").partition("/")
        return cls(
            user=user,
            server=server,
            url=event.url,
            token=event.token,
            image=event.image or "",
            repo_url=event.repo_url or "",
            binder_ref_url=event.binder_ref_url or "",
            binder_request=event.binder_request or "",
            binder_persistent_request=event.binder_persistent_request or "",
            redirect_path=redirect_path,
        )


def _sync(stream: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from synchronous code, on an event loop in a thread of its own
    (so it works where a loop already runs, as in a notebook)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="binder-client", daemon=True)
    thread.start()

    async def step() -> T:
        return await anext(stream)

    try:
        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(step(), loop).result()
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            asyncio.run_coroutine_threadsafe(aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _settled(item: BinderEvent | LaunchedSession) -> LaunchedSession | None:
    """The session a launch ended with, None while it goes on; LaunchFailed if it failed."""
    if isinstance(item, LaunchedSession):
        return item
    if item.phase == "failed":
        raise LaunchFailed(item)
    return None


class BinderClient:
    """binder-actors from Python: launch, build and resolve Binder links; list and stop sessions.

    `link` is anything a Binder link can be: `https://host/v2/<provider>/<spec>?labpath=...`,
    or `<provider>/<spec>`. Errors are the messages the HTTP stream sends in `failed` events.

    `owner`: in authenticated mode, the hub user this client acts as (see `connect`'s token): launches
    start that user's named servers, and sessions and stop see only theirs.
    """

    def __init__(self, handles: ActorHandles, image_prefix: str = "", owner: str = "") -> None:
        self.handles = handles
        self.image_prefix = image_prefix
        self.owner = owner

    @classmethod
    def connect(cls, address: str | None = "auto", namespace: str = "binder", token: str | None = None) -> BinderClient:
        """Join a running binder-actors: the local one, `ray://host:10001`, or from inside the cluster.

        `token` (default: $JUPYTERHUB_API_TOKEN) is a hub user's API token: in authenticated mode the
        client acts as that user; PermissionError if the hub refuses it. With auth off it is not used.
        """
        if not ray.is_initialized():
            try:
                ray.init(address=address, namespace=namespace, log_to_driver=False)
            except ConnectionError as error:
                raise ConnectionError(
                    f"No running binder-actors found ({error}). Start one with `make serve` "
                    "(or `binder-actors serve`), or pass the address of its Ray cluster."
                ) from None
        try:
            handles = get_actors(namespace)
        except ValueError:
            raise ConnectionError(
                f"Ray is running but binder-actors' actors are not (namespace {namespace!r}): "
                "start them with `make serve` (or `binder-actors serve`)."
            ) from None
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "") if token is None else token
        owner = ray.get(handles.session_manager.user_of_token.remote(token)) if token else ""
        if owner is None:
            raise PermissionError("JupyterHub does not accept this API token (--token or $JUPYTERHUB_API_TOKEN).")
        return cls(handles, ray.get(handles.image_cache.image_prefix.remote()), owner)

    async def alaunch(self, link: str) -> AsyncIterator[BinderEvent | LaunchedSession]:
        """The launch's events, as the HTTP stream sends them, then the LaunchedSession if it is ready."""
        parsed = parse_binder_url(link, allow_local_repos=True)  # the service's config decides
        launch = launch_events(
            self.handles, parsed.provider, parsed.spec, image_prefix=self.image_prefix, owner=self.owner
        )
        async for event in launch:
            yield event
            if event.phase == "ready":
                yield LaunchedSession.from_ready(event, parsed.redirect_path)

    def launch(self, link: str) -> Iterator[BinderEvent | LaunchedSession]:
        """`alaunch` for synchronous code."""
        return _sync(self.alaunch(link))

    async def astart(self, link: str) -> LaunchedSession:
        """Launch and return the session; raises LaunchFailed with the `failed` event's message."""
        async for item in self.alaunch(link):
            session = _settled(item)
            if session is not None:
                return session
        raise LaunchFailed(failed(NO_READY, 500))

    def start(self, link: str) -> LaunchedSession:
        """`astart` for synchronous code."""
        for item in self.launch(link):
            session = _settled(item)
            if session is not None:
                return session
        raise LaunchFailed(failed(NO_READY, 500))

    def build(self, link: str) -> Iterator[BinderEvent]:
        """Build the link's image without launching: events ending in `built` (with imageName) or `failed`."""
        parsed = parse_binder_url(link, allow_local_repos=True)  # the service's config decides
        return _sync(
            launch_events(self.handles, parsed.provider, parsed.spec, image_prefix=self.image_prefix, build_only=True)
        )

    def resolve(self, link: str) -> ResolvedRef:
        """The commit the link's ref names now; raises InvalidSpec or ResolveError."""
        parsed = parse_binder_url(link, allow_local_repos=True)  # the service's config decides
        try:
            return ray.get(
                self.handles.ref_resolver.resolve.remote(ResolveRequest(provider=parsed.provider, spec=parsed.spec))
            )
        except RayTaskError as error:
            raise error.cause from None

    def sessions(self) -> list[Session]:
        """Every session; a client acting as a logged-in user sees only theirs."""
        return ray.get(self.handles.session_manager.list_sessions.remote(self.owner or None))

    def stop(self, session: Session | LaunchedSession | str) -> None:
        """Stop a session (or the session of a user name) and delete its temporary user.

        A client acting as a logged-in user stops one of their servers (a session, or its server name).
        """
        if self.owner:
            server = session if isinstance(session, str) else session.server
            user, stop = self.owner, self.handles.session_manager.stop.remote(self.owner, server, owner=self.owner)
        else:
            user = session if isinstance(session, str) else session.user
            stop = self.handles.session_manager.stop.remote(user)
        try:
            ray.get(stop)
        except RayTaskError as error:  # the hub's refusal (HubError), with its message
            raise error.cause from None

    def images(self) -> list[str]:
        return ray.get(self.handles.image_cache.images.remote())

    def cull(self, timeout: float | None = None, dry_run: bool = False) -> CullReport:
        """One culling sweep now; `timeout` overrides BINDER_CULL_TIMEOUT once, `dry_run` only reports."""
        return ray.get(self.handles.activity_monitor.cull_once.remote(timeout=timeout, dry_run=dry_run))

    def prune(self, dry_run: bool = False) -> PruneReport:
        """Bring the image store within BINDER_IMAGE_STORE_MAX_GB now, as before a build (dry_run: only say what)."""
        return ray.get(self.handles.build_scheduler.prune.remote(dry_run=dry_run))

    def status(self, actor_timeout: float = 10.0) -> ServiceStatus:
        """What is running: Ray, the hub, each actor, the caches, builds, sessions and the culler."""
        handles = self.handles
        hub, refs, image_cache, builds, building, culler = ray.get(
            [
                handles.session_manager.health.remote(),
                handles.ref_resolver.stats.remote(),
                handles.image_cache.stats.remote(),
                handles.build_scheduler.stats.remote(),
                handles.build_scheduler.running.remote(),
                handles.activity_monitor.status.remote(),
            ]
        )
        actors = {}
        for name, handle in handles.named():
            try:
                ray.get(handle.__ray_ready__.remote(), timeout=actor_timeout)
                actors[name] = "ok"
            except Exception as error:  # a status report shows a dead actor, it does not stop at it
                actors[name] = type(error).__name__
        return ServiceStatus(
            ray=ray.get_runtime_context().gcs_address,
            hub=hub,
            actors=actors,
            refs=refs,
            image_cache=image_cache,
            builds=builds,
            building=building,
            sessions=len(self.sessions()),
            images=len(self.images()),
            culler=culler,
        )
