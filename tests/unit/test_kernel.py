"""run_code's deadline holds against a server that keeps the connection alive but never answers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from tornado import web, websocket
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from binder_actors.kernel import run_code


class Kernels(web.RequestHandler):
    def post(self) -> None:
        self.write({"id": "k1", "name": "python3"})

    def delete(self, kernel_id: str = "") -> None:
        self.set_status(204)


class SilentChannels(websocket.WebSocketHandler):
    """A kernel that never answers, behind a server that pings more often than any socket timeout."""

    def on_message(self, message: str | bytes) -> None:
        pass


@pytest.fixture
def silent_server() -> Iterator[str]:
    ready = threading.Event()
    state: dict[str, object] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application(
            [
                (r"/api/kernels", Kernels),
                (r"/api/kernels/(\w+)", Kernels),
                (r"/api/kernels/\w+/channels", SilentChannels),
            ],
            websocket_ping_interval=0.1,
        )
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets(sockets)
        state.update(loop=loop, server=server, port=sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    loop = state["loop"]
    assert isinstance(loop, asyncio.AbstractEventLoop)
    yield f"http://127.0.0.1:{state['port']}/"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_a_kernel_that_never_answers_times_out_at_the_deadline_despite_pings(silent_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 1.5s"):
        run_code(silent_server, "token", "print(1)", timeout=1.5)
    assert time.monotonic() - started < 10
