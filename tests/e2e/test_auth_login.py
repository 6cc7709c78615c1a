"""A person in a real browser on an authenticated Binder (tests/auth_stack.py): log in at the hub, click a
Binder link, land in JupyterLab on the notebook in a named server of theirs; log out, and the link asks
for a login again."""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit

from tests.auth_stack import PASSWORD
from tests.e2e.browser import Page, chromium_page
from tests.helpers import git_spec, wait_for

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


def on_hub_login(page: Page, hub_url: str) -> bool:
    href = page.evaluate("location.href") or ""
    return href.startswith(hub_url + "hub/login") and bool(page.evaluate("!!document.getElementById('password_input')"))


def test_log_in_click_a_link_land_in_jupyterlab_log_out_and_the_link_asks_again(auth_stack, git_server):
    git_server.add("auth-login-repo", {"requirements.txt": "tabulate==0.9.0\n", "analysis.ipynb": NOTEBOOK})
    link = f"{auth_stack.url}v2/git/{git_spec(git_server.url('auth-login-repo'), 'main')}?labpath=analysis.ipynb"
    hub_url = auth_stack.hub.url
    name = f"frank-{secrets.token_hex(3)}"
    with chromium_page() as page:
        # The landing page needs a login: the hub's login page comes first, and brings the browser back.
        page.goto(auth_stack.url)
        wait_for(lambda: on_hub_login(page, hub_url), 60, "the hub's login page")
        page.type("#username_input", name)
        page.type("#password_input", PASSWORD)
        page.click("#login_submit")
        wait_for(lambda: page.evaluate("location.href") == auth_stack.url, 60, "the landing page after the login")
        wait_for(lambda: page.evaluate("!!document.getElementById('repo')"), 30, "the landing page's form")

        # A Binder link, as a README carries it: clicked, it launches a named server of this user.
        page.evaluate(
            f"(() => {{ const a = document.createElement('a'); a.id = 'binder-link'; a.href = {json.dumps(link)};"
            " a.textContent = 'launch'; document.body.append(a); })()"
        )
        page.click("#binder-link")
        wait_for(
            lambda: "/doc/tree/analysis.ipynb" in (page.evaluate("location.href") or ""),
            300,
            "the browser to be sent to the session",
        )
        path = page.evaluate("location.pathname")
        assert path.startswith(f"/user/{name}/"), path
        server = path.split("/")[3]
        assert server in auth_stack.user(name).servers, "the session is a named server of the logged-in user"
        wait_for(lambda: page.evaluate("!!document.querySelector('.jp-NotebookPanel')"), 90, "JupyterLab's notebook")
        wait_for(lambda: "analysis.ipynb" in page.evaluate("document.body.innerText"), 60, "the notebook's name")

        # Logged out (of binder-actors and the hub), the same link asks for a login again.
        page.goto(auth_stack.url + "logout")
        wait_for(lambda: urlsplit(page.evaluate("location.href") or "").path.startswith("/hub/"), 60, "the hub")
        page.goto(link)
        wait_for(lambda: on_hub_login(page, hub_url), 60, "the hub's login page for the link")
        assert PASSWORD not in page.evaluate("document.documentElement.outerHTML")
