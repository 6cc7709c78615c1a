"""A person in a real browser (Debian's chromium): from the landing page to JupyterLab on the notebook."""

from __future__ import annotations

from urllib.parse import quote

from tests.e2e.browser import chromium_page
from tests.helpers import git_spec, wait_for

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


def test_landing_page_makes_a_link_with_badges_and_launches_it(base_url, git_server):
    git_server.add("landing-repo", {"requirements.txt": "tabulate==0.9.0\n", "analysis.ipynb": NOTEBOOK})
    repo_url = git_server.url("landing-repo")
    expected = f"{base_url}v2/git/{git_spec(repo_url, 'main')}?labpath=analysis.ipynb"
    with chromium_page() as page:
        page.goto(base_url)
        wait_for(lambda: page.evaluate("document.readyState") == "complete", 30, "the landing page")
        assert page.evaluate("document.getElementById('launch').disabled")  # nothing to launch yet
        page.choose("#provider", "git")
        page.type("#repo", repo_url)
        page.type("#ref", "main")
        page.type("#path", "analysis.ipynb")
        assert page.text("#link") == expected
        assert page.text("#badge-markdown") == f"[![Binder]({base_url}badge_logo.svg)]({expected})"
        assert page.text("#badge-rst") == f".. image:: {base_url}badge_logo.svg\n :target: {expected}"
        assert f'href="{expected}"' in page.text("#badge-html")
        page.click("#launch")
        wait_for(
            lambda: "/doc/tree/analysis.ipynb" in (page.evaluate("location.href") or ""),
            300,
            "the browser to be sent to the session",
        )
        assert page.evaluate("location.pathname").startswith("/user/")
        wait_for(lambda: page.evaluate("!!document.querySelector('.jp-NotebookPanel')"), 90, "JupyterLab's notebook")
        # A notebook without kernel metadata asks which kernel to use, naming the notebook.
        wait_for(lambda: "analysis.ipynb" in page.evaluate("document.body.innerText"), 60, "the notebook's name")


def test_a_pasted_github_url_becomes_its_binder_link(base_url, github):
    # The stack's GitHub is the stand-in on 127.0.0.1: the page knows links of the configured host.
    with chromium_page() as page:
        page.goto(base_url)
        wait_for(lambda: page.evaluate("document.readyState") == "complete", 30, "the landing page")
        page.type("#repo", f"{github.url}/binder-examples/requirements/blob/main/notebooks/index.ipynb")
        page.evaluate("document.getElementById('repo').dispatchEvent(new Event('change', {bubbles: true}))")
        assert page.text("#provider") == "gh"
        assert page.text("#ref") == "main"
        assert (
            page.text("#link") == f"{base_url}v2/gh/binder-examples/requirements/main?labpath=notebooks%2Findex.ipynb"
        )


def test_the_landing_page_says_what_is_wrong_with_a_repository(base_url):
    with chromium_page() as page:
        page.goto(base_url)
        wait_for(lambda: page.evaluate("document.readyState") == "complete", 30, "the landing page")
        page.choose("#provider", "zenodo")
        page.type("#repo", "not a doi")
        assert "does not look like a Zenodo DOI" in page.evaluate("document.getElementById('problem').textContent")
        assert page.evaluate("document.getElementById('launch').disabled")
        assert page.evaluate("document.getElementById('ref').disabled")  # records have no ref


def test_a_link_that_cannot_launch_shows_the_error(base_url, git_server):
    git_server.add("browser-bad-ref", {"requirements.txt": ""})
    link = f"{base_url}v2/git/{git_spec(git_server.url('browser-bad-ref'), 'no-such-branch')}"
    with chromium_page() as page:
        page.goto(link)
        wait_for(lambda: page.evaluate("!document.getElementById('error').hidden"), 120, "the error to show")
        assert "Could not resolve ref 'no-such-branch'" in page.evaluate("document.getElementById('error').textContent")
        assert page.evaluate("location.pathname").startswith("/v2/git/")


def test_the_launch_page_sends_the_browser_to_a_urlpath_holding_html_special_characters(base_url, git_server):
    # `&`, `<` and `"` are what HTML escaping changes; inside the page's settings script they must
    # reach the browser as they are, and so must non-ASCII text.
    notebook = 'a&b<c"dé.ipynb'
    git_server.add("browser-special-path", {"requirements.txt": "", notebook: NOTEBOOK})
    spec = git_spec(git_server.url("browser-special-path"), "main")
    with chromium_page() as page:
        page.goto(f"{base_url}v2/git/{spec}?urlpath={quote('doc/tree/' + notebook, safe='')}")
        wait_for(
            lambda: (page.evaluate("location.pathname") or "").startswith("/user/"),
            300,
            "the browser to be sent to the session",
        )
        landed = page.evaluate("decodeURIComponent(location.pathname)")
        assert landed.split("/", 3)[3] == f"doc/tree/{notebook}", landed
