"""An operator's look and words (PageSettings) in a real browser: a deployment with every page setting,
served beside the session stack's on its own base URL over the same actors (as test_http_api does).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from serve_app.embedded import EmbeddedStack
from tests.e2e.browser import Page, chromium_page
from tests.helpers import git_spec, wait_for
from tests.integration.test_http_api import deploy

ENTERPRISE_GITHUB = "https://github.physics.example.edu"
BADGE_BASE = "https://binder.physics.example.edu/"
# A banner trying what a careless operator might paste: the image's handler must not run.
BANNER = (
    'Physics Binder: <a href="https://status.physics.example.edu">status</a>'
    '<img src="nowhere.png" onerror="window.bannerAttack = true"><script>window.bannerAttack = true</script>'
)
HEADER = '<meta name="binder-operator" content="physics"><link rel="stylesheet" href="/themed/assets/site.css">'
ABOUT_TEMPLATE = (
    '{% extends "page.html" %}{% block body %}<h1 id="physics-about">About the Physics Binder</h1>'
    "{{ about_message }}{% endblock %}"
)


@pytest.fixture(scope="module")
def themed_url(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("operator")
    (folder / "templates").mkdir()
    (folder / "templates" / "about.html").write_text(ABOUT_TEMPLATE)
    (folder / "static").mkdir()
    (folder / "static" / "site.css").write_text(".binder-banner { color: rgb(1, 2, 3); }\n")
    (folder / "outside.txt").write_text("not to be served")
    yield from deploy(
        stack,
        "binder-themed",
        base_url="/themed/",
        banner_message=BANNER,
        about_message="Run by <em>the physics department</em>.",
        extra_header=HEADER,
        extra_footer_scripts={"analytics": "window.operatorAnalytics = (window.operatorAnalytics || 0) + 1;"},
        template_path=str(folder / "templates"),
        extra_static_path=str(folder / "static"),
        extra_static_url_prefix="assets/",
        badge_base_url=BADGE_BASE,
        repo_providers=["GitHubRepoProvider", "git"],
        providers=stack.config.providers.model_copy(update={"github_url": ENTERPRISE_GITHUB}),
    )


PATH = "document.getElementById('path')"


def loaded(page: Page, url: str) -> None:
    page.goto(url)
    wait_for(lambda: page.evaluate("document.readyState") == "complete", 30, url)


def assert_operator_look(page: Page) -> None:
    """The banner (its link kept, its handlers and script gone), the extra head, the footer script and the
    stylesheet served from the extra static folder, as the browser sees them."""
    assert page.text("#banner").startswith("Physics Binder: status")
    assert page.evaluate("document.querySelector('#banner a').href") == "https://status.physics.example.edu/"
    assert page.evaluate("document.querySelectorAll('#banner script, #banner [onerror]').length") == 0
    assert page.evaluate("window.bannerAttack === undefined")
    assert page.evaluate("document.querySelector('head meta[name=binder-operator]').content") == "physics"
    assert page.evaluate("window.operatorAnalytics") == 1
    wait_for(
        lambda: page.evaluate("getComputedStyle(document.getElementById('banner')).color") == "rgb(1, 2, 3)",
        30,
        "the extra static stylesheet to apply",
    )


def test_the_landing_page_carries_the_operators_look_and_offers_its_providers(themed_url, git_server):
    git_server.add("themed-repo", {"requirements.txt": ""})
    repo_url = git_server.url("themed-repo")
    with chromium_page() as page:
        loaded(page, themed_url)
        assert_operator_look(page)
        options = page.evaluate("[...document.querySelectorAll('#provider option')].map(o => [o.value, o.text])")
        assert options == [["gh", "GitHub (github.physics.example.edu)"], ["git", "Git repository"]]
        # A pasted link of the configured GitHub is taken apart; github.com is not this Binder's GitHub.
        page.type("#repo", f"{ENTERPRISE_GITHUB}/physics/lab-notes/blob/main/week1.ipynb")
        page.evaluate("document.getElementById('repo').dispatchEvent(new Event('change', {bubbles: true}))")
        assert page.text("#repo") == "physics/lab-notes"
        assert page.text("#ref") == "main"
        assert page.text("#link") == f"{BADGE_BASE}v2/gh/physics/lab-notes/main?labpath=week1.ipynb"
        # The badge snippets point at the badge base URL.
        page.choose("#provider", "git")
        page.evaluate("(e => { e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true})); })(" + PATH + ")")
        page.type("#repo", repo_url)
        page.type("#ref", "main")
        link = f"{BADGE_BASE}v2/git/{git_spec(repo_url, 'main')}"
        assert page.text("#link") == link
        assert page.text("#badge-markdown") == f"[![Binder]({BADGE_BASE}badge_logo.svg)]({link})"
        assert page.text("#badge-rst") == f".. image:: {BADGE_BASE}badge_logo.svg\n :target: {link}"


def test_the_about_page_is_the_operators_template_with_its_message(themed_url):
    with chromium_page() as page:
        loaded(page, themed_url + "about")
        assert_operator_look(page)
        assert page.text("#physics-about") == "About the Physics Binder"
        assert page.evaluate("document.querySelector('em').textContent") == "the physics department"


def test_a_provider_the_operator_did_not_enable_is_refused_on_a_page_with_its_look(themed_url):
    with chromium_page() as page:
        loaded(page, themed_url + "v2/gl/group%2Fproject/HEAD")
        assert_operator_look(page)
        assert "does not launch 'gl' links; it offers gh, git" in page.text(".error")
    offered = httpx.get(themed_url + "api/repoproviders", timeout=30).json()
    assert [provider["id"] for provider in offered] == ["gh", "git"]


def test_extra_static_files_are_served_under_their_prefix_and_nothing_else(themed_url):
    found = httpx.get(themed_url + "assets/site.css", timeout=30)
    assert found.status_code == 200
    assert found.headers["content-type"].startswith("text/css")
    assert "rgb(1, 2, 3)" in found.text
    for path in ("assets/../outside.txt", "assets/%2e%2e/outside.txt", "assets/", "assets/missing.css", "site.css"):
        response = httpx.get(themed_url + path, timeout=30)
        assert response.status_code == 404, path
        assert "not to be served" not in response.text


def test_the_session_stack_keeps_its_defaults(base_url):
    page = httpx.get(base_url, timeout=30).text
    assert 'id="banner"' not in page and "binder-operator" not in page
    assert httpx.get(base_url + "assets/site.css", timeout=30).status_code == 404


def test_the_launch_page_carries_the_operators_look(themed_url, git_server):
    git_server.add("themed-bad-ref", {"requirements.txt": ""})
    link = f"{themed_url}v2/git/{git_spec(git_server.url('themed-bad-ref'), 'no-such-branch')}"
    with chromium_page() as page:
        loaded(page, link)
        assert_operator_look(page)
        wait_for(lambda: page.evaluate("!document.getElementById('error').hidden"), 120, "the error to show")
        assert "no-such-branch" in page.evaluate("document.getElementById('error').textContent")
