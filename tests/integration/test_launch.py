"""A Binder link, launched over HTTP against the real embedded stack, ends in a working kernel."""

from __future__ import annotations

import concurrent.futures
import json
import re
from pathlib import Path

import httpx
import ray

from binder_actors.names import image_name
from tests.helpers import git_spec, read_events, run_in_kernel, wait_for
from tests.integration.conftest import REQUIREMENTS_REPO, hub_users

PHASES = ["fetching", "building", "built", "launching", "ready"]


def phases(events: list[dict]) -> list[str]:
    seen: list[str] = []
    for event in events:
        if not seen or seen[-1] != event["phase"]:
            seen.append(event["phase"])
    return seen


def test_launch_runs_code_that_imports_a_requirement(base_url, git_server, stack):
    sha = git_server.add("first-launch", REQUIREMENTS_REPO)
    repo_url = git_server.url("first-launch")
    events = read_events(base_url, f"build/git/{git_spec(repo_url, 'main')}")
    assert phases(events) == PHASES, events[-1]
    ready = events[-1]
    assert ready["image"] == image_name("", repo_url, sha)
    assert ready["repo_url"] == repo_url
    assert ready["binder_request"] == f"v2/git/{git_spec(repo_url, 'main')}"
    assert ready["binder_persistent_request"] == f"v2/git/{git_spec(repo_url, sha)}"
    assert ready["binder_launch_host"] == base_url
    assert ready["binder_ref_url"] == repo_url
    built = next(e for e in events if e["phase"] == "built")
    assert built["imageName"] == ready["image"]

    status = httpx.get(ready["url"] + "api/status", headers={"Authorization": f"token {ready['token']}"}, timeout=30)
    assert status.status_code == 200, status.text
    output = run_in_kernel(
        ready["url"], ready["token"], "import tabulate, os; print(tabulate.__version__, os.getcwd())"
    )
    version, cwd = output.split()
    assert version == "0.9.0"
    assert (stack.config.data_dir / "sessions") in Path(cwd).parents


def test_session_url_needs_its_token(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    ready = read_events(base_url, f"build/git/{git_spec(repo_url, 'HEAD')}")[-1]
    assert ready["phase"] == "ready"
    assert httpx.get(ready["url"] + "api/status", timeout=30).status_code == 403
    wrong = httpx.get(ready["url"] + "api/status", headers={"Authorization": "token nope"}, timeout=30)
    assert wrong.status_code == 403
    lab = httpx.get(ready["url"] + f"lab?token={ready['token']}", timeout=30, headers={"Sec-Fetch-Mode": "navigate"})
    assert lab.status_code == 200 and "<title>JupyterLab</title>" in lab.text


def test_second_launch_of_a_built_ref_builds_nothing(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    first = read_events(base_url, f"build/git/{git_spec(repo_url, 'main')}")
    assert first[-1]["phase"] == "ready"
    again = read_events(base_url, f"build/git/{git_spec(repo_url, 'main')}")
    assert phases(again) == ["built", "launching", "ready"]
    assert again[0]["message"] == "Found built image, launching...\n"
    assert again[-1]["url"] != first[-1]["url"]


def test_simultaneous_first_launches_share_one_build(base_url, git_server, actors):
    repo_url = git_server.url("shared-build")
    git_server.add("shared-build", {"requirements.txt": "tabulate==0.9.0\n"})
    before = ray.get(actors.build_scheduler.stats.remote()).builds_started
    path = f"build/git/{git_spec(repo_url, 'main')}"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: read_events(base_url, path), range(4)))
    assert [r[-1]["phase"] for r in results] == ["ready"] * 4
    assert ray.get(actors.build_scheduler.stats.remote()).builds_started == before + 1
    assert all(any(e["phase"] == "building" for e in r) or r[0]["phase"] == "built" for r in results)


def test_idle_server_and_its_user_are_culled(base_url, requirements_repo, stack, actors):
    repo_url, _ = requirements_repo
    ready = read_events(base_url, f"build/git/{git_spec(repo_url, 'main')}")[-1]
    user = ready["url"].rstrip("/").rsplit("/", 1)[-1]
    assert user in {u["name"] for u in hub_users(stack)}
    home = stack.config.data_dir / "sessions" / f"{user}-default"
    assert home.is_dir()

    def culled() -> bool:
        report = ray.get(actors.activity_monitor.cull_once.remote(timeout=1))
        return user in report.culled

    wait_for(culled, 60, "the idle server to be culled", interval=0.5)
    assert user not in {u["name"] for u in hub_users(stack)}
    assert not home.exists()
    answer = httpx.get(ready["url"] + "api/status", headers={"Authorization": f"token {ready['token']}"}, timeout=30)
    assert answer.status_code != 200


def test_health_reports_the_hub_and_every_actor(base_url):
    health = httpx.get(base_url + "health", timeout=30)
    assert health.status_code == 200
    body = health.json()
    assert body["ok"] is True
    services = {check["service"] for check in body["checks"]}
    assert services == {
        "Registry",
        "JupyterHub",
        "Session quota",
        "ref_resolver",
        "image_cache",
        "build_scheduler",
        "session_manager",
        "activity_monitor",
        "server_pool",
    }
    assert body["pool"]["enabled"] is False  # off by default (tests/integration/test_server_pool.py turns it on)


def test_launch_page_opens_the_stream_and_knows_where_to_land(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    page = httpx.get(base_url + f"v2/git/{git_spec(repo_url, 'main')}?labpath=index.ipynb", timeout=30)
    assert page.status_code == 200
    settings = json.loads(re.search(r'<script id="binder-settings"[^>]*>(.*?)</script>', page.text, re.S)[1])
    assert settings["redirectPath"] == "doc/tree/index.ipynb"
    # The page's own stream URL, resolved against the page as a browser resolves it, launches.
    build_path = str(page.url.join(settings["buildUrl"])).removeprefix(base_url)
    assert read_events(base_url, build_path)[-1]["phase"] == "ready"


def test_launch_page_refuses_a_path_that_leaves_the_server(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    page = httpx.get(base_url + f"v2/git/{git_spec(repo_url, 'main')}?urlpath=../../hub/admin", timeout=30)
    assert page.status_code == 400
    assert "leaves the server" in page.text


def test_images_are_stored_once_per_resolved_ref(stack, requirements_repo):
    repo_url, sha = requirements_repo
    assert (stack.config.images_dir).is_dir()
    expected = image_name("", repo_url, sha)
    markers = [p.name for p in stack.config.images_dir.iterdir()]
    assert sum(expected.split(":")[0] in name for name in markers) == 1


def test_github_link_launches_as_on_mybinder(base_url, github):
    sha = github.add_github_repo("binder-examples/requirements", REQUIREMENTS_REPO)
    events = read_events(base_url, "build/gh/binder-examples/requirements/HEAD")
    assert phases(events) == PHASES, events[-1]
    ready = events[-1]
    assert ready["image"] == f"binder-2dexamples-2drequirements-55ab5c:{sha}"  # BinderHub's name for it
    assert ready["repo_url"] == f"{github.url}/binder-examples/requirements"
    assert ready["binder_ref_url"] == f"{github.url}/binder-examples/requirements/tree/{sha}"
    assert ready["binder_persistent_request"] == f"v2/gh/binder-examples/requirements/{sha}"
    version = run_in_kernel(ready["url"], ready["token"], "import tabulate; print(tabulate.__version__)")
    assert version.strip() == "0.9.0"


def test_link_to_a_renamed_master_branch_still_launches_and_says_so(base_url, github):
    sha = github.add_github_repo("old-docs/renamed", REQUIREMENTS_REPO)  # has HEAD and main, no master
    events = read_events(base_url, "build/gh/old-docs/renamed/master")
    notice = next(e for e in events if e["phase"] == "waiting")
    assert "Trying again with HEAD" in notice["message"] and "update your links" in notice["message"]
    assert events[-1]["phase"] == "ready", events[-1]
    assert events[-1]["image"].endswith(f":{sha}")
    assert events[-1]["binder_request"] == "v2/gh/old-docs/renamed/master"
