"""Bad input ends in a `failed` event whose message says what was wrong, and leaves nothing behind."""

from __future__ import annotations

from urllib.parse import quote

from tests.helpers import git_spec, read_events
from tests.integration.conftest import hub_users


def failure(base_url: str, path: str) -> dict:
    events = read_events(base_url, path)
    assert events[-1]["phase"] == "failed", events
    assert all(e["phase"] != "ready" for e in events)
    return events[-1]


def test_unknown_provider_fails_naming_it(base_url):
    event = failure(base_url, "build/nope/some/thing/HEAD")
    assert "Unknown provider 'nope'" in event["message"]
    assert event["status_code"] == 400


def test_spec_without_ref_fails_with_help(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    event = failure(base_url, f"build/git/{quote(repo_url, safe='')}/")
    assert "has no ref" in event["message"]


def test_unsupported_protocol_is_refused_before_git_runs(base_url):
    event = failure(base_url, f"build/git/{quote('ext::sh -c touch% /tmp/pwned', safe='')}/HEAD")
    assert "not a repository URL" in event["message"]
    event = failure(base_url, f"build/git/{quote('file:///etc', safe='')}/HEAD")
    assert "BINDER_ALLOW_LOCAL_REPOS" in event["message"]


def test_ref_that_looks_like_an_option_is_refused(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    event = failure(base_url, f"build/git/{git_spec(repo_url, '--upload-pack=touch /tmp/x')}")
    assert "not a valid git ref" in event["message"]


def test_missing_repository_fails_saying_so(base_url, git_server):
    event = failure(base_url, f"build/git/{git_spec(git_server.url('does-not-exist'), 'HEAD')}")
    assert "Could not reach the repository" in event["message"]
    assert event["status_code"] == 404


def test_ref_that_does_not_resolve_fails_with_message(base_url, requirements_repo):
    repo_url, _ = requirements_repo
    event = failure(base_url, f"build/git/{git_spec(repo_url, 'no-such-branch')}")
    assert "Could not resolve ref 'no-such-branch'" in event["message"]


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
