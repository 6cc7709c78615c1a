"""BinderHub's own JavaScript client (the npm package its pages use), unchanged, launches against this service."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from binder_actors.config import PROJECT_DIR
from tests.helpers import git_spec

SCRIPT = Path(__file__).with_name("binderhub_client.mjs")
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


def launch_with_binderhub_client(base_url: str, provider_spec: str, query: str = "") -> list[dict]:
    """Everything the client printed: its events, then the redirect it computed."""
    client = PROJECT_DIR / "node_modules" / "@jupyterhub" / "binderhub-client"
    assert client.is_dir(), "npm install (make setup) brings @jupyterhub/binderhub-client"
    done = subprocess.run(
        ["node", str(SCRIPT), f"{base_url}build/", provider_spec, query],
        cwd=PROJECT_DIR,  # node resolves the package from the project's node_modules
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_binderhub_js_client_launches_and_lands_on_the_notebook(base_url, git_server):
    git_server.add("js-client-repo", {"requirements.txt": "tabulate==0.9.0\n", "analysis.ipynb": NOTEBOOK})
    spec = f"git/{git_spec(git_server.url('js-client-repo'), 'main')}"
    printed = launch_with_binderhub_client(base_url, spec, "labpath=analysis.ipynb")
    phases = [line["event"]["phase"] for line in printed if "event" in line]
    assert phases[-1] == "ready" and "built" in phases, phases
    redirect = printed[-1]["redirect"]
    ready = printed[-2]["event"]
    assert redirect == f"{ready['url']}doc/tree/analysis.ipynb?token={ready['token']}"
    contents = httpx.get(
        f"{ready['url']}api/contents/analysis.ipynb", headers={"Authorization": f"token {ready['token']}"}, timeout=30
    )
    assert contents.status_code == 200, contents.text


def test_binderhub_js_client_reports_a_failure(base_url, git_server):
    git_server.add("js-client-bad", {"requirements.txt": ""})
    printed = launch_with_binderhub_client(base_url, f"git/{git_spec(git_server.url('js-client-bad'), 'nope')}")
    final = printed[-1]["event"]
    assert final["phase"] == "failed" and "Could not resolve ref 'nope'" in final["message"]
