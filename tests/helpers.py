"""Test helpers that talk to real things: git repositories, the SSE stream, a Jupyter kernel."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from binder_actors.kernel import run_code
from serve_app.embedded import free_port

T = TypeVar("T")

GIT_IDENTITY = ["-c", "user.name=binder-tests", "-c", "user.email=tests@binder.invalid"]


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def make_repo(root: Path, name: str, files: dict[str, str]) -> str:
    """A git repository `root/name` holding `files`, one commit on `main`; returns its sha."""
    repo = root / name
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    commit(repo, "initial")
    return head(repo)


def commit(repo: Path, message: str) -> None:
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", *GIT_IDENTITY, "-C", str(repo), "commit", "-q", "-m", message], check=True)


def head(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def git_spec(repo_url: str, ref: str) -> str:
    return f"{quote(repo_url, safe='')}/{quote(ref, safe='')}"


def read_events(
    base_url: str, path: str, timeout: float = 600, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every event of one EventSource stream, until the server closes it."""
    events = []
    asked = {"Accept": "text/event-stream", **(headers or {})}
    with httpx.stream("GET", base_url + path, headers=asked, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


def run_in_kernel(server_url: str, token: str, code: str, timeout: float = 120, kernel_name: str | None = None) -> str:
    """Start a kernel (`kernel_name`, else the default one) on a Jupyter server, run `code`, return its stdout
    (raises on an error)."""
    return run_code(server_url, token, code, timeout, kernel_name)


@dataclass
class GitServer:
    """`git daemon` serving every repository under `root` on 127.0.0.1."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def add(self, name: str, files: dict[str, str]) -> str:
        """A new repository served at `url(name)`; returns its commit."""
        return make_repo(self.root, name, files)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_git_server(root: Path) -> GitServer:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={root}",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = GitServer(root=root, port=port, process=process)
    server.add("probe", {"README.md": "probe\n"})
    wait_for(
        lambda: subprocess.run(["git", "ls-remote", server.url("probe")], capture_output=True).returncode == 0,
        30,
        "git daemon to serve",
    )
    return server


def processes_with_env(marker: str) -> list[int]:
    """Pids of processes whose environment holds `marker` (every descendant of a command started with it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
