"""The Python client and the CLI against the real stack; the README's client example runs as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from binder_actors.client import BinderClient, LaunchedSession, LaunchFailed
from binder_actors.events import BinderEvent
from tests.helpers import git_spec, read_events

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def client(stack) -> BinderClient:
    return BinderClient.connect(namespace=stack.config.namespace)


@pytest.fixture(scope="module")
def link(base_url, requirements_repo) -> str:
    repo_url, _ = requirements_repo
    return f"{base_url}v2/git/{git_spec(repo_url, 'main')}?labpath=index.ipynb"


def test_readme_client_example_runs_as_written(link, client):
    block = re.search(r"```python\n(from binder_actors.client import BinderClient.*?)```", README.read_text(), re.S)
    assert block, "the README's client example is missing"
    code = re.sub(r'^link = ".*"$', f"link = {link!r}", block[1], flags=re.M)
    printed: list[str] = []
    exec(compile(code, "README.md", "exec"), {"print": printed.append})
    assert printed and printed[0].startswith("3.10")


def test_launch_yields_the_http_events_then_a_session(link, client, stack):
    items = list(client.launch(link))
    assert isinstance(items[-1], LaunchedSession)
    events = [i for i in items if isinstance(i, BinderEvent)]
    assert events[-1].phase == "ready"
    session = items[-1]
    assert session.browser_url == f"{session.url}doc/tree/index.ipynb?token={session.token}"
    assert session.run("import tabulate; print(tabulate.__version__)").strip() == "0.9.0"
    assert session.user in {s.user for s in client.sessions()}
    client.stop(session)
    assert session.user not in {s.user for s in client.sessions()}


def test_async_launch_and_build_only(link, client):
    async def collect() -> list:
        return [item async for item in client.alaunch(link)]

    items = asyncio.run(collect())
    assert isinstance(items[-1], LaunchedSession)
    client.stop(items[-1])
    built = list(client.build(link))
    assert [e.phase for e in built] == ["built"] and built[0].image_name in client.images()


def test_wrong_spec_raises_the_message_http_sends(base_url, client, requirements_repo):
    repo_url, _ = requirements_repo
    spec = git_spec(repo_url, "no-such-branch")
    http_message = read_events(base_url, f"build/git/{spec}")[-1]["message"]
    with pytest.raises(LaunchFailed) as failure:
        client.start(f"git/{spec}")
    assert str(failure.value) == http_message.rstrip("\n")


def test_connecting_where_binder_actors_does_not_run_says_how_to_start_it():
    with pytest.raises(ConnectionError, match="make serve"):
        BinderClient.connect(namespace="nothing-runs-here")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    address = ray.get_runtime_context().gcs_address
    return subprocess.run(
        [sys.executable, "-m", "binder_actors.cli", *args, "--address", address],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )


def test_cli_launch_sessions_cull_stop_and_status(link):
    launched = cli("launch", link)
    assert launched.returncode == 0, launched.stderr[-2000:]
    url = launched.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/user/[a-z0-9-]+/doc/tree/index\.ipynb\?token=\w+", url)
    user = url.split("/user/")[1].split("/")[0]
    assert "launching" in launched.stderr

    listed = json.loads(cli("sessions", "--json").stdout)
    assert user in {s["user"] for s in listed}
    dry = json.loads(cli("cull", "--dry-run", "--timeout", "0", "--json").stdout)
    assert user in dry["culled"]
    assert user in {s["user"] for s in json.loads(cli("sessions", "--json").stdout)}, "a dry run culls nothing"

    assert cli("stop", user).returncode == 0
    assert user not in {s["user"] for s in json.loads(cli("sessions", "--json").stdout)}
    status = json.loads(cli("status", "--json").stdout)
    assert status["running"] is True and status["hub"]["ok"] is True
    assert set(status["actors"].values()) == {"ok"}


def test_cli_launch_json_streams_events_and_fails_with_exit_code(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    bad = cli("launch", f"git/{git_spec(repo_url, 'no-such-branch')}", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout.strip().splitlines()[-1])["phase"] == "failed"
