"""The Ray Serve ingress: BinderHub's HTTP surface over the actors (launch stream, pages, health).

Routes parse and answer bad input themselves; every launch is `launch.launch_events` underneath.
"""

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import unquote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from ray import serve
from ray.exceptions import RayTaskError

from binder_actors.actors import ensure_actors
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent, failed
from binder_actors.hub import HubError
from binder_actors.launch import launch_events
from binder_actors.links import redirect_path
from binder_actors.providers import InvalidSpec, ResolvedRef, parse_spec
from serve_app.access import AccessControl, AccessPolicy, build_only_requested
from serve_app.auth import LoginGate, LoginRequired, hub_user
from serve_app.event_log import LaunchEventLog, request_origin
from serve_app.health import HealthChecks, ask
from serve_app.launches import LaunchRegistry, new_launch_id, parse_last_event_id
from serve_app.metrics import CONTENT_TYPE, BinderMetrics, repo_labels
from serve_app.pages import error_page, launch_page, static_file
from serve_app.paths import legacy_redirect, provider_and_spec
from serve_app.repoproviders import repoproviders
from serve_app.sse import SSE_HEADERS, Identified, event_stream
from serve_app.versions import versions

api = FastAPI(title="binder-actors", docs_url=None, redoc_url=None)


def _replica_access() -> AccessPolicy:
    """The access policy of the deployment this replica runs (the middleware is attached before it exists)."""
    return serve.get_replica_context().servable_object.access


def _replica_login_gate() -> LoginGate | None:
    """The login gate of this replica's deployment; None with auth off."""
    return serve.get_replica_context().servable_object.login_gate


# Before @serve.ingress, which freezes a copy of `api`; the last added runs first: access control, then login.
api.add_middleware(LoginRequired, gate=_replica_login_gate)
api.add_middleware(AccessControl, policy=_replica_access)

NOT_YOUR_LAUNCH = "This launch belongs to another user: start your own launch (reload the page)."


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1").split("?", 1)[0] if raw else request.url.path


async def _single(item: Identified) -> AsyncIterator[Identified]:
    yield item


AUTH_ONLY = "Sessions are listed per logged-in user, in authenticated mode (BINDER_AUTH_ENABLED) only."
BADGE_HEADERS = {"Cache-Control": "public, max-age=86400"}  # badges sit in READMEs all over the web


async def _ending_as_binderhub_builds(events: AsyncIterator[BinderEvent]) -> AsyncIterator[BinderEvent]:
    """A build_only stream: after `built`, BinderHub's API-only mode says `ready` ("Done! Image built")."""
    async for event in events:
        yield event
        if event.phase == "built":
            yield BinderEvent(phase="ready", message="Done! Image built\n", image_name=event.image_name)


# Helpers sit above the deployment: Serve serialises the class where it is defined.
@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
@serve.ingress(api)
class BinderIngress:
    def __init__(self, config: BinderConfig | None = None) -> None:
        self.config = config or BinderConfig()
        self.actors = ensure_actors(self.config)
        self.launches = LaunchRegistry()
        self.access = AccessPolicy(self.config)
        self.login_gate = LoginGate(self.config) if self.config.auth.enabled else None
        self.metrics = BinderMetrics()
        self.health_checks = HealthChecks(self.actors, self.config)
        self.event_log = LaunchEventLog(self.config.event_log, urlsplit(self.config.launch_host).netloc)

    def _check_spec(self, provider: str, spec: str) -> None:
        """Raise InvalidSpec for a spec no upstream could resolve, before any actor is asked."""
        parse_spec(provider, spec, settings=self.config.providers, allow_local_repos=self.config.allow_local_repos)

    @api.get("/build/{provider}/{spec:path}")
    async def build(self, request: Request) -> Response:
        """BinderHub's EventSource launch stream; a reconnect (Last-Event-ID) re-attaches to its launch."""
        resumed = parse_last_event_id(request.headers.get("last-event-id"))
        run = self.launches.get(resumed[0]) if resumed else None
        owner = hub_user(request.scope)  # '' with auth off
        if run is not None and run.owner != owner:
            events = _single((None, failed(NOT_YOUR_LAUNCH, 403)))
        elif run is not None and resumed is not None:
            if run.finished_at is not None and resumed[1] >= run.last_number:
                return Response(status_code=204)  # everything was seen: a 204 stops EventSource reconnecting
            events = run.numbered(after=resumed[1])
        else:
            # A launch id this replica does not know is one another (or a dead) replica gave out:
            # running the launch again under it reaches the same session, not a second one.
            launch_id = resumed[0] if resumed else new_launch_id()
            try:
                provider, spec = provider_and_spec(_raw_path(request), "build")
                self._check_spec(provider, spec)
                build_only = build_only_requested(request.query_params.get("build_only"), self.config.api_only)
                resolved: list[ResolvedRef] = []
                launch = launch_events(
                    self.actors,
                    provider,
                    spec,
                    image_prefix=self.config.registry.image_prefix,
                    build_only=build_only,
                    launch_id=launch_id,
                    owner=owner,
                    on_resolved=resolved.append,
                )
                if build_only:
                    launch = _ending_as_binderhub_builds(launch)
                if not resumed:  # a resumed launch was counted (and logged) where it began
                    labels = repo_labels(provider, spec, self.config)
                    launch = self.metrics.observed(launch, labels, build_only=build_only)
                    if self.event_log.enabled and not build_only:  # launches, not image builds, are logged
                        launch = self.event_log.observed(
                            launch,
                            resolved,
                            provider=provider,
                            spec=spec,
                            build_token="build_token" in request.query_params,
                            origin_of_request=request_origin(request.headers),
                        )
                first = resumed[1] + 1 if resumed else 0  # a resumed launch's numbers go on from the client's
                events = self.launches.start(launch, launch_id, first, owner).numbered(first - 1)
            except InvalidSpec as error:
                events = _single((None, failed(str(error), 400)))
        return StreamingResponse(event_stream(events), media_type="text/event-stream", headers=SSE_HEADERS)

    @api.get("/v2/{provider}/{spec:path}", response_class=HTMLResponse)
    async def launch_page(self, request: Request) -> HTMLResponse:
        """The page a Binder link opens: it follows the stream and sends the browser on."""
        try:
            provider, spec = provider_and_spec(_raw_path(request), "v2")
            self._check_spec(provider, spec)
            query = request.query_params
            landing = redirect_path(query.get("urlpath"), query.get("labpath"), query.get("filepath"))
        except InvalidSpec as error:
            return HTMLResponse(error_page(str(error)), status_code=400)
        depth = spec.count("/") + 2  # from /v2/<provider>/<spec> back to the app's root
        build_url = "../" * depth + f"build/{provider}/{spec}"
        token = self.access.page_token(f"{provider}/{spec}", request.headers)  # None unless BINDER_BUILD_TOKEN_SECRET
        settings = {"buildUrl": build_url + (f"?build_token={token}" if token else ""), "redirectPath": landing}
        return HTMLResponse(launch_page(unquote(f"{provider}/{spec}"), settings))

    @api.get("/", response_class=HTMLResponse)
    async def home(self) -> HTMLResponse:
        return HTMLResponse(static_file("index.html"))

    @api.api_route("/health", methods=["GET", "HEAD"])  # load balancers ask with HEAD
    async def health(self) -> JSONResponse:
        """Registry, JupyterHub, session quota and each actor; 503 when a check other than the quota fails."""
        report = await self.health_checks.report()
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    @api.api_route("/versions", methods=["GET", "HEAD"])
    async def versions(self) -> JSONResponse:
        """BinderHub's shape: what builds images, and this service's version in place of BinderHub's."""
        return JSONResponse(versions(self.config, await self.health_checks.hub_version()))

    @api.get("/api/repoproviders")
    async def repo_providers(self) -> JSONResponse:
        return JSONResponse(repoproviders(self.config.providers))

    @api.get("/api/sessions")
    async def sessions(self, request: Request) -> JSONResponse:
        """The logged-in user's Binder sessions (authenticated mode)."""
        owner = hub_user(request.scope)
        if not owner:
            return JSONResponse({"message": AUTH_ONLY}, status_code=404)
        sessions = await self.actors.session_manager.list_sessions.remote(owner)
        return JSONResponse([session.model_dump(mode="json") for session in sessions])

    @api.delete("/api/sessions/{server}")
    async def stop_session(self, request: Request, server: str) -> Response:
        """Stop one of the logged-in user's Binder sessions (its server name, as /api/sessions lists it)."""
        owner = hub_user(request.scope)
        if not owner:
            return JSONResponse({"message": AUTH_ONLY}, status_code=404)
        try:
            await self.actors.session_manager.stop.remote(owner, server, owner=owner)
        except RayTaskError as error:
            if isinstance(error.cause, HubError):
                return JSONResponse({"message": str(error.cause)}, status_code=error.cause.status_code)
            raise
        return Response(status_code=204)

    @api.get("/metrics")
    async def metrics(self) -> Response:
        """Prometheus text format: this replica's launch metrics and the actors' counters."""
        handles = self.actors
        self.metrics.cluster.update(
            *await asyncio.gather(
                ask(handles.image_cache.stats.remote()),
                ask(handles.ref_resolver.stats.remote()),
                ask(handles.build_scheduler.stats.remote()),
                ask(handles.activity_monitor.status.remote()),
            )
        )
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

    @api.get("/badge.svg")
    async def badge(self) -> Response:
        return Response(static_file("badge.svg"), media_type="image/svg+xml", headers=BADGE_HEADERS)

    @api.get("/badge_logo.svg")
    async def badge_logo(self) -> Response:
        return Response(static_file("badge_logo.svg"), media_type="image/svg+xml", headers=BADGE_HEADERS)

    @api.get("/repo/{user}/{repo}{path:path}")
    async def legacy_repo(self, user: str, repo: str, path: str) -> RedirectResponse:
        """Links of the first Binder: /repo/<user>/<repo>[/path] opens that GitHub repository's master."""
        return RedirectResponse(legacy_redirect(self.config.base_path, user, repo, path), status_code=302)


def build_app(config: BinderConfig | None = None) -> serve.Application:
    return BinderIngress.bind(config)
