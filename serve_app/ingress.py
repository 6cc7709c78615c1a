"""The Ray Serve ingress: BinderHub's HTTP surface over the actors (launch stream, pages, health).

Routes parse and answer bad input themselves; every launch is `client.launch_events` underneath.
"""

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any
from urllib.parse import unquote

import ray
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from ray import serve

from binder_actors.actors import ensure_actors
from binder_actors.client import launch_events
from binder_actors.config import BinderConfig
from binder_actors.events import failed
from binder_actors.links import redirect_path
from binder_actors.providers import InvalidSpec, parse_spec
from serve_app.launches import LaunchRegistry, parse_last_event_id
from serve_app.paths import provider_and_spec
from serve_app.sse import SSE_HEADERS, Identified, event_stream

api = FastAPI(title="binder-actors", docs_url=None, redoc_url=None)


def _page(name: str) -> str:
    return files("serve_app").joinpath("static", name).read_text()


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1").split("?", 1)[0] if raw else request.url.path


async def _call(ref: ray.ObjectRef, timeout: float = 5.0) -> Any:
    """An actor call's answer, or a string saying why there is none."""
    try:
        return await asyncio.wait_for(ref, timeout)
    except Exception as error:  # a health check reports failures, it does not raise them
        return type(error).__name__


async def _single(item: Identified) -> AsyncIterator[Identified]:
    yield item


def _error_page(message: str) -> str:
    return _page("error.html").replace("{{message}}", html.escape(message))


# Helpers sit above the deployment: Serve serialises the class where it is defined.
@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
@serve.ingress(api)
class BinderIngress:
    def __init__(self, config: BinderConfig | None = None) -> None:
        self.config = config or BinderConfig()
        self.actors = ensure_actors(self.config)
        self.launches = LaunchRegistry()

    def _check_spec(self, provider: str, spec: str) -> None:
        """Raise InvalidSpec for a spec no upstream could resolve, before any actor is asked."""
        parse_spec(provider, spec, settings=self.config.providers, allow_local_repos=self.config.allow_local_repos)

    @api.get("/build/{provider}/{spec:path}")
    async def build(self, request: Request) -> Response:
        """BinderHub's EventSource launch stream; a reconnect (Last-Event-ID) re-attaches to its launch."""
        resumed = parse_last_event_id(request.headers.get("last-event-id"))
        run = self.launches.get(resumed[0]) if resumed else None
        if run is not None and resumed is not None:
            if run.finished_at is not None and resumed[1] >= len(run.backlog) - 1:
                return Response(status_code=204)  # everything was seen: a 204 stops EventSource reconnecting
            events = run.follow(after=resumed[1])
        else:
            try:
                provider, spec = provider_and_spec(_raw_path(request), "build")
                self._check_spec(provider, spec)
                launch = launch_events(self.actors, provider, spec, image_prefix=self.config.image_prefix)
                events = self.launches.start(launch).follow()
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
            return HTMLResponse(_error_page(str(error)), status_code=400)
        depth = spec.count("/") + 2  # from /v2/<provider>/<spec> back to the app's root
        settings = {"buildUrl": "../" * depth + f"build/{provider}/{spec}", "redirectPath": landing}
        page = (
            _page("launch.html")
            .replace("{{settings}}", html.escape(json.dumps(settings), quote=False))
            .replace("{{spec}}", html.escape(unquote(f"{provider}/{spec}")))
        )
        return HTMLResponse(page)

    @api.get("/", response_class=HTMLResponse)
    async def home(self) -> HTMLResponse:
        return HTMLResponse(_page("index.html"))

    @api.get("/health")
    async def health(self) -> JSONResponse:
        """The hub's and each actor's state; 503 when any is not ok."""
        checks: list[dict[str, Any]] = []
        hub = await _call(self.actors.session_manager.health.remote())
        hub_check = hub if isinstance(hub, dict) else {"ok": False, "error": hub}
        checks.append({"service": "JupyterHub", **hub_check})
        for name in type(self.actors).model_fields:
            handle = getattr(self.actors, name)
            started = time.monotonic()
            answer = await _call(handle.__ray_ready__.remote())
            checks.append(
                {
                    "service": name,
                    "ok": not isinstance(answer, str),
                    "latency_ms": round((time.monotonic() - started) * 1000, 2),
                }
            )
        culler = await _call(self.actors.activity_monitor.status.remote())
        ok = all(check["ok"] for check in checks)
        body = {"ok": ok, "checks": checks, "culler": culler if isinstance(culler, dict) else None}
        return JSONResponse(body, status_code=200 if ok else 503)


def build_app(config: BinderConfig | None = None) -> serve.Application:
    return BinderIngress.bind(config)
