"""TEST TOOL for `python -m bench scale`, never the product's default: ONE process on loopback that
answers for every "server" of the load harness, so thousands of sessions cost nothing.

It speaks just enough of a single-user server for the hub, the culler and the `ready` event to
behave as with real ones: any path under a registered session's prefix answers 200 (the hub's
spawn check), `<prefix>api/status` answers as jupyter_server does, and each session reports its
activity to the hub as `jupyterhub-singleuser` does (at start, then every ACTIVITY_INTERVAL seconds
from its own start, with the server's own token). LoopbackSpawner registers and unregisters the sessions.

    python -m bench.loopback_server --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
from jupyterhub import __version__ as jupyterhub_version
from tornado import web

log = logging.getLogger("bench.loopback_server")

ACTIVITY_INTERVAL = 300.0  # JUPYTERHUB_ACTIVITY_INTERVAL's default in jupyterhub-singleuser
ACTIVITY_CONCURRENCY = 4  # reports in flight at once, so the reports never flood the hub at once
REGISTER_PATH = "/_loopback/sessions"


@dataclass
class LoopbackSession:
    user: str
    server: str
    prefix: str
    token: str
    activity_url: str
    started: str
    next_report: float = 0.0  # time.monotonic() of its next activity report


class Sessions:
    """The registered sessions, by service prefix (`/user/<name>/[<server>/]`)."""

    def __init__(self) -> None:
        self.by_prefix: dict[str, LoopbackSession] = {}
        self.reported = 0
        self.report_errors = 0
        self._client = httpx.AsyncClient(timeout=30)
        self._slots = asyncio.Semaphore(ACTIVITY_CONCURRENCY)

    def find(self, path: str) -> LoopbackSession | None:
        parts = path.split("/")
        # /user/<name>/ or /user/<name>/<server>/: the prefix is the first three or four parts.
        for length in (4, 3):
            prefix = "/".join(parts[:length]) + "/"
            if prefix in self.by_prefix:
                return self.by_prefix[prefix]
        return None

    async def report(self, session: LoopbackSession) -> None:
        """One activity report, as jupyterhub-singleuser sends it."""
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        body = {"servers": {session.server: {"last_activity": now}}, "last_activity": now}
        async with self._slots:
            try:
                response = await self._client.post(
                    session.activity_url, json=body, headers={"Authorization": f"token {session.token}"}
                )
                if response.status_code >= 400:
                    raise httpx.HTTPStatusError(str(response.status_code), request=response.request, response=response)
                self.reported += 1
            except httpx.HTTPError as error:
                self.report_errors += 1
                log.warning("activity report failed user=%s: %s", session.user, type(error).__name__)

    async def report_forever(self) -> None:
        """Each session reports every ACTIVITY_INTERVAL from its own start, as its own server would
        (one timer for all of them would send every report in the same instant)."""
        while True:
            await asyncio.sleep(1.0)  # the reports' clock, not a synchronisation
            now = time.monotonic()
            due = [session for session in self.by_prefix.values() if session.next_report <= now]
            for session in due:
                session.next_report = now + ACTIVITY_INTERVAL
            await asyncio.gather(*(self.report(session) for session in due))


class RegisterHandler(web.RequestHandler):
    def initialize(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def post(self) -> None:
        body = json.loads(self.request.body)
        started = datetime.now(timezone.utc).isoformat()
        session = LoopbackSession(started=started, next_report=time.monotonic() + ACTIVITY_INTERVAL, **body)
        self.sessions.by_prefix[session.prefix] = session
        asyncio.get_running_loop().create_task(self.sessions.report(session))  # a real server reports at start
        self.write({"registered": session.prefix})

    def delete(self) -> None:
        prefix = self.get_argument("prefix")
        self.sessions.by_prefix.pop(prefix, None)
        self.set_status(204)

    def get(self) -> None:
        self.write(
            {
                "sessions": len(self.sessions.by_prefix),
                "activity_reports": self.sessions.reported,
                "activity_report_errors": self.sessions.report_errors,
            }
        )


class ServerHandler(web.RequestHandler):
    """Every other path: a session's server, or 404 for a prefix nobody registered."""

    def initialize(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def get(self, path: str) -> None:
        session = self.sessions.find(self.request.path)
        if session is None:
            raise web.HTTPError(404)
        self.set_header("Content-Type", "application/json")
        self.set_header("X-JupyterHub-Version", jupyterhub_version)  # as jupyterhub-singleuser, so the hub checks it
        if self.request.path.endswith("/api/status"):
            self.write({"started": session.started, "last_activity": session.started, "connections": 0, "kernels": 0})
        elif self.request.path.endswith("/api"):
            self.write({"version": "loopback"})
        else:
            self.write({"loopback": True, "user": session.user})


def make_app(sessions: Sessions) -> web.Application:
    return web.Application(
        [(REGISTER_PATH, RegisterHandler, {"sessions": sessions}), (r"/(.*)", ServerHandler, {"sessions": sessions})]
    )


async def serve(port: int) -> None:
    sessions = Sessions()
    make_app(sessions).listen(port, address="127.0.0.1")
    log.info("loopback server (a test tool) on 127.0.0.1:%s", port)
    await sessions.report_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="TEST TOOL: one loopback process answering for every bench server.")
    parser.add_argument("--port", type=int, required=True)
    logging.basicConfig(level=logging.INFO)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
