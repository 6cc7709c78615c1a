"""Run code in a Jupyter kernel of a session, over the Jupyter server's REST and websocket APIs."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import websocket

KERNEL_INFO_RETRY_SECONDS = 2.0


class KernelError(Exception):
    """The code raised in the kernel; the message is the kernel's `ename: evalue`."""


def run_code(server_url: str, token: str, code: str, timeout: float = 120, kernel_name: str | None = None) -> str:
    """Start a kernel, run `code`, return what it printed; the kernel is shut down afterwards.

    The kernel is `kernel_name` (`ir`: an R notebook's), else the server's default one, as a new notebook's:
    the image's Python 2.7 kernel, for example.
    """
    headers = {"Authorization": f"token {token}"}
    body = {"name": kernel_name} if kernel_name else {}
    answer = httpx.post(server_url + "api/kernels", headers=headers, json=body, timeout=60)
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


def _message(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "binder",
        "session": uuid.uuid4().hex,
        "version": "5.3",
    }
    return {"header": header, "parent_header": {}, "metadata": {}, "channel": "shell", "content": content}


def _receive(channel: websocket.WebSocket, until: float) -> dict[str, Any] | None:
    """The next message from the kernel, or None at `until` (monotonic).

    The socket's timeout alone would not bound the wait: the server's websocket pings arrive more
    often than it, and websocket-client answers them inside recv() and reads on.
    """
    while (remaining := until - time.monotonic()) > 0:
        channel.settimeout(remaining)
        try:
            opcode, frame = channel.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return json.loads(frame.data)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise KernelError("the server closed the kernel's connection")
    return None


def _parent_id(message: dict[str, Any]) -> str:
    return str(message.get("parent_header", {}).get("msg_id", ""))


def _wait_until_ready(channel: websocket.WebSocket, deadline: float) -> None:
    """Ask for kernel_info until the kernel answers one of the asks on its shell channel (a new kernel
    may miss the first ask, and a busy one may answer an earlier ask late)."""
    asked: set[str] = set()
    while time.monotonic() < deadline:
        request = _message("kernel_info_request", {})
        asked.add(request["header"]["msg_id"])
        channel.send(json.dumps(request))
        ask_again = min(deadline, time.monotonic() + KERNEL_INFO_RETRY_SECONDS)
        while (reply := _receive(channel, ask_again)) is not None:
            if reply.get("msg_type") == "kernel_info_reply" and _parent_id(reply) in asked:
                return


def _execute(channel: websocket.WebSocket, code: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    _wait_until_ready(channel, deadline)
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    request = _message("execute_request", content)
    channel.send(json.dumps(request))
    output: list[str] = []
    while (message := _receive(channel, deadline)) is not None:
        if _parent_id(message) != request["header"]["msg_id"]:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            output.append(content["text"])
        elif kind == "error":
            raise KernelError(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(output)
    raise TimeoutError(f"the kernel did not finish within {timeout:g}s")
