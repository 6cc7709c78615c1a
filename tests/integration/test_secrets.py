"""Secrets stay secret through a whole launch: the hub's API token, the GitHub token and the registry
password appear in no response, no event, no log file and no process's command line.

The stack holds all three (tests/conftest.py); the GitHub stand-in checks the token was really used.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import ray

from tests.conftest import GITHUB_TOKEN, REGISTRY_PASSWORD, REQUIREMENTS_REPO
from tests.helpers import git_spec

SSE = {"Accept": "text/event-stream"}


def log_files(stack) -> list[Path]:
    """The hub's and the sessions' logs, the build locks, and every log of this Ray session."""
    data = stack.config.data_dir
    ray_logs = Path(ray._private.worker.global_worker.node.get_session_dir_path()) / "logs"
    found = [*data.glob("hub/*.log"), *data.glob("sessions/*.log"), *data.glob("builds/*")]
    return found + [path for path in ray_logs.rglob("*") if path.is_file()]


def command_lines() -> list[bytes]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes())
            except OSError:
                continue
    return lines


def test_no_secret_in_anything_a_whole_launch_produces(base_url, github, git_server, stack):
    secrets = {
        "hub API token": stack.config.hub_api_token.get_secret_value(),
        "GitHub token": GITHUB_TOKEN,
        "registry password": REGISTRY_PASSWORD,
    }
    assert all(len(value) >= 16 for value in secrets.values())
    github.add_github_repo("secret-scan/requirements", REQUIREMENTS_REPO)
    git_server.add("secret-scan", REQUIREMENTS_REPO)

    texts: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=600) as http:
        for path in (
            "build/gh/secret-scan/requirements/HEAD",  # resolved through the GitHub API with the token
            f"build/git/{git_spec(git_server.url('secret-scan'), 'main')}",
            "build/gh/secret-scan/requirements/no-such-ref",  # a failure's message
            "build/gh/secret-scan/no-such-repo/HEAD",
        ):
            response = http.get(path, headers=SSE)
            texts[path] = response.text
        assert '"phase": "ready"' in texts["build/gh/secret-scan/requirements/HEAD"]
        for path in ("", "v2/gh/secret-scan/requirements/HEAD", "health", "versions", "metrics", "api/repoproviders"):
            texts[path or "/"] = http.get(path).text
    assert any(seen.get("Authorization") == f"token {GITHUB_TOKEN}" for seen in github.headers_seen), (
        "the GitHub token was never used: this scan would prove nothing about it"
    )

    for path in log_files(stack):
        texts[str(path)] = path.read_text(errors="replace")
    assert len(texts) > 20, sorted(texts)
    for what, secret in secrets.items():
        leaks = [name for name, text in texts.items() if secret in text]
        assert leaks == [], f"the {what} appears in {leaks}"
        assert not any(secret.encode() in line for line in command_lines()), f"the {what} is on a command line"
