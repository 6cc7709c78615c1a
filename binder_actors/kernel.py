"""Run code in a Jupyter kernel of a session, over the Jupyter server's REST and websocket APIs."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import websocket


class KernelError(Exception):
    """The code raised in the kernel; the message is the kernel's `ename: evalue`."""


def run_code(server_url: str, token: str, code: str, timeout: float = 120) -> str:
    """Start a kernel, run `code`, return what it printed; the kernel is shut down afterwards."""
    headers = {"Authorization": f"token {token}"}
    answer = httpx.post(server_url + "api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
    answer.raise_for_status()
    kernel_id = answer.json()["id"]
    ws_url = server_url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
    try:
        channel = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
        try:
            return _execute(channel, code, timeout)
        finally:
            channel.close()
    finally:
        httpx.delete(server_url + f"api/kernels/{kernel_id}", headers=headers, timeout=30)


def _execute(channel: websocket.WebSocket, code: str, timeout: float) -> str:
    msg_id = uuid.uuid4().hex
    channel.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "binder",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
            }
        )
    )
    output: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(channel.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            output.append(content["text"])
        elif kind == "error":
            raise KernelError(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(output)
    raise TimeoutError(f"the kernel did not finish within {timeout:g}s")
