"""A headless Debian chromium driven over the DevTools protocol (websocket-client), for page tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import websocket

from serve_app.embedded import free_port
from tests.helpers import wait_for

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
]


class Page:
    """One browser tab: navigate, evaluate JavaScript, take screenshots."""

    def __init__(self, socket: websocket.WebSocket) -> None:
        self._socket = socket
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def type(self, selector: str, text: str) -> None:
        """Focus the field and type `text` into it, as a keyboard would (input events included)."""
        assert self.evaluate(f"(e => {{ e.focus(); e.select && e.select(); return true; }})({_element(selector)})")
        self.call("Input.insertText", text=text)

    def choose(self, selector: str, value: str) -> None:
        """Pick an option of a <select>, firing the events a person's choice fires."""
        fire = "for (const k of ['input', 'change']) e.dispatchEvent(new Event(k, {bubbles: true}));"
        self.evaluate(f"(e => {{ e.value = {json.dumps(value)}; {fire} }})({_element(selector)})")

    def click(self, selector: str) -> None:
        assert self.evaluate(f"(e => {{ e.click(); return true; }})({_element(selector)})")

    def text(self, selector: str) -> str:
        """A field's value, or an element's text."""
        return self.evaluate(f"(e => e.value ?? e.textContent)({_element(selector)})")


def _element(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


@contextmanager
def chromium_page() -> Iterator[Page]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed for the browser tests: apt-get install chromium"
    port = free_port()
    # chromium's helper processes may still write to the profile as it is removed
    with tempfile.TemporaryDirectory(prefix="binder-chromium-", ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={port}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: closing it ends every helper process too
        )
        try:

            def page_target() -> str | None:
                try:
                    targets = httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
                except httpx.HTTPError:
                    return None
                return next((t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"), None)

            socket = websocket.create_connection(wait_for(page_target, 60, "chromium to start"), timeout=60)
            try:
                page = Page(socket)
                page.call("Page.enable")
                yield page
            finally:
                socket.close()
        finally:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait(10)
