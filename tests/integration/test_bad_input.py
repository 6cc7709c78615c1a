"""Bad input ends in a `failed` event whose message says what was wrong, and leaves nothing behind."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.helpers import git_spec, read_events
from tests.integration.conftest import hub_users


def failure(base_url: str, path: str) -> dict:
    events = read_events(base_url, path)
    assert events[-1]["phase"] == "failed", events
    assert all(e["phase"] != "ready" for e in events)
    return events[-1]


@pytest.mark.parametrize(
    ("path", "message", "status_code"),
    [
        ("build/nope/some/thing/HEAD", "Unknown provider 'nope'", 400),
        ("build/git/{repo_escaped}/", "has no ref", 400),
        (f"build/git/{quote('ext::sh -c touch% /tmp/pwned', safe='')}/HEAD", "not a repository URL", 400),
        (f"build/git/{quote('file:///etc', safe='')}/HEAD", "BINDER_ALLOW_LOCAL_REPOS", 400),
        ("build/git/{repo_escaped}/" + quote("--upload-pack=touch /tmp/x", safe=""), "not a valid git ref", 400),
        ("build/git/{missing_escaped}/HEAD", "Could not reach the repository", 404),
        ("build/git/{repo_escaped}/no-such-branch", "Could not resolve ref 'no-such-branch'", 404),
    ],
)
def test_bad_input_fails_saying_what_was_wrong(base_url, requirements_repo, git_server, path, message, status_code):
    repo_url, _ = requirements_repo
    path = path.format(
        repo_escaped=quote(repo_url, safe=""), missing_escaped=quote(git_server.url("does-not-exist"), safe="")
    )
    event = failure(base_url, path)
    assert message in event["message"]
    assert event["status_code"] == status_code


def test_failing_pip_install_leaves_no_image_and_no_server(base_url, git_server, stack):
    git_server.add("broken-requirements", {"requirements.txt": "this-package-does-not-exist-binder==1.0\n"})
    users_before = {u["name"] for u in hub_users(stack)}
    event = failure(base_url, f"build/git/{git_spec(git_server.url('broken-requirements'), 'main')}")
    assert "installing requirements.txt failed" in event["message"]
    assert "this-package-does-not-exist-binder" in event["message"]
    leftovers = [p for p in stack.config.images_dir.iterdir() if "broken" in p.name]
    assert leftovers == []
    assert {u["name"] for u in hub_users(stack)} == users_before


def test_repository_needing_containers_is_told_which_backend(base_url, git_server):
    git_server.add("needs-apt", {"apt.txt": "cowsay\n", "requirements.txt": "tabulate\n"})
    event = failure(base_url, f"build/git/{git_spec(git_server.url('needs-apt'), 'main')}")
    assert "apt.txt" in event["message"] and "BINDER_BUILDER=docker" in event["message"]
