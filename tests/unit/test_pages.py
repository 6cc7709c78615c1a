"""The operator's page settings (PageSettings), each rendered: banner, about page, extra head HTML, footer
scripts, template overrides, extra static files, badge base URL, and the providers the landing page offers.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from binder_actors.config import BinderConfig, ConfigError, ProviderSettings
from binder_actors.config_features import PageSettings
from serve_app.access import route_kind
from serve_app.extra_static import extra_static_file
from serve_app.landing import landing_providers
from serve_app.pages import Pages
from serve_app.repoproviders import repoproviders

DEFAULT_PROVIDERS = ["gh", "gl", "gist", "git", "zenodo", "figshare", "hydroshare", "dataverse", "ckan", "swh"]


@pytest.fixture(autouse=True)
def no_binder_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("BINDER_")]:
        monkeypatch.delenv(name)


def all_pages(pages: Pages) -> dict[str, str]:
    return {
        "landing": pages.landing(),
        "launch": pages.launch("gh/org/repo/HEAD", {"buildUrl": "b", "redirectPath": "lab"}),
        "error": pages.error("no such ref"),
        "about": pages.about(),
    }


def settings_json(page: str) -> Any:
    return json.loads(re.search(r'<script id="binder-settings" type="application/json">(.*?)</script', page, re.S)[1])


def banner_of(page: str) -> str:
    found = re.search(r'<div class="binder-banner" id="banner" role="note">(.*?)</div>', page, re.S)
    assert found, "no banner"
    return found[1]


def test_without_page_settings_no_page_carries_a_banner_or_operator_code():
    for name, page in all_pages(Pages()).items():
        assert 'id="banner"' not in page, name
        assert page.count("<script") == (2 if name in ("landing", "launch") else 0), name
    landing = settings_json(Pages().landing())
    assert [p["id"] for p in landing["providers"]] == DEFAULT_PROVIDERS
    assert landing["badgeBaseUrl"] == ""
    assert [p["name"] for p in landing["providers"][:3]] == ["GitHub", "GitLab.com", "Gist"]


def test_the_banner_is_on_every_page():
    pages = Pages(PageSettings(banner_message='Maintenance tonight: <a href="https://status.example.org">status</a>'))
    for name, page in all_pages(pages).items():
        banner = banner_of(page)
        assert banner.startswith('Maintenance tonight: <a href="https://status.example.org"'), name
        assert ">status</a>" in banner, name


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert('banner')</script>",
        '<img src="x" onerror="alert(\'banner\')">',
        "<a href=\"javascript:alert('banner')\">click</a>",
        "<svg onload=\"alert('banner')\"></svg>",
        '<iframe src="https://evil.example"></iframe>',
        "<b onmouseover=\"alert('banner')\">bold</b>",
    ],
)
def test_a_banner_with_a_script_or_event_handler_is_rendered_harmless(attack):
    pages = Pages(PageSettings(banner_message=f"Notice {attack}", about_message=f"About {attack}"))
    for name, page in all_pages(pages).items():
        banner = banner_of(page)
        assert banner.startswith("Notice"), name
        for harmful in ("<script", "onerror", "onload", "onmouseover", "javascript:", "<iframe", "<svg"):
            assert harmful not in banner.lower(), (name, banner)
        assert "alert('banner')" not in page.replace(banner, ""), name  # nowhere else on the page either
    about = re.search(r'<div id="about-message">(.*?)</div>', pages.about(), re.S)[1]
    assert about.startswith("About") and "<script" not in about and "javascript:" not in about and " on" not in about


def test_the_about_page_shows_the_about_message_and_the_version():
    plain = Pages().about()
    assert "<h1>About this Binder</h1>" in plain and 'id="about-message"' not in plain
    page = Pages(PageSettings(about_message="Run by <em>the Physics department</em>.")).about()
    assert '<div id="about-message">Run by <em>the Physics department</em>.</div>' in page
    assert "binder-actors " in page
    assert 'href="about"' in Pages().landing()  # the landing page links to it


def test_extra_header_goes_in_every_head_as_it_is():
    header = '<meta name="operator" content="physics"><link rel="stylesheet" href="/extra_static/site.css">'
    for name, page in all_pages(Pages(PageSettings(extra_header=header))).items():
        head = page.split("</head>", 1)[0]
        assert header in head, name


def test_footer_scripts_end_every_page_in_the_order_of_their_names():
    scripts = {"b-analytics": "window.analytics = 'b';", "a-first": "window.first = '<a>';"}
    for name, page in all_pages(Pages(PageSettings(extra_footer_scripts=scripts))).items():
        tail = page.rsplit("</body>", 1)[0]
        first, second = tail.index("window.first = '<a>';"), tail.index("window.analytics = 'b';")
        assert first < second, name
        assert tail.rstrip().endswith("window.analytics = 'b';\n</script>"), name


def test_a_template_folder_overrides_the_built_in_pages_of_the_same_name(tmp_path: Path):
    (tmp_path / "about.html").write_text(
        '{% extends "page.html" %}{% block body %}<h1 id="custom">Our own about page</h1>{{ about_message }}'
        "{% endblock %}"
    )
    (tmp_path / "page.html").write_text(
        (Path(__file__).parents[2] / "serve_app/templates/page.html")
        .read_text()
        .replace("<body>", '<body>\n<nav id="operator-nav">Physics Binder</nav>')
    )
    pages = Pages(PageSettings(template_path=str(tmp_path), about_message="<i>hi</i>", banner_message="B"))
    about = pages.about()
    assert '<h1 id="custom">Our own about page</h1><i>hi</i>' in about
    assert "About this Binder" not in about
    for name, page in all_pages(pages).items():  # the built-in pages extend the operator's page.html
        assert '<nav id="operator-nav">Physics Binder</nav>' in page, name
        assert banner_of(page) == "B", name
    assert "Turn a repository into a Jupyter session" in pages.landing()  # index.html is still the built-in one


def test_extra_static_files_are_found_only_inside_their_folder(tmp_path: Path):
    folder = tmp_path / "static"
    (folder / "css").mkdir(parents=True)
    (folder / "css" / "site.css").write_text("body {}")
    (tmp_path / "secret.txt").write_text("not served")
    (folder / "leak").symlink_to(tmp_path / "secret.txt")
    prefix = "extra_static/"
    assert extra_static_file(str(folder), prefix, "extra_static/css/site.css") == (folder / "css/site.css").resolve()
    for path in [
        "extra_static/../secret.txt",
        "extra_static/css/../../secret.txt",
        "extra_static/leak",  # a symlink leading out of the folder
        "extra_static/css",  # a folder: no listing
        "extra_static/",
        "extra_static/missing.css",
        "other/css/site.css",
        "extra_static//etc/passwd",
        "extra_static/css/site.css\x00.png",  # a NUL: no file, not a server error
    ]:
        assert extra_static_file(str(folder), prefix, path) is None, path
    assert extra_static_file("", prefix, "extra_static/css/site.css") is None  # no folder configured


def test_the_landing_page_names_the_configured_hosts():
    hosts = ProviderSettings(
        github_url="https://github.example.org/",
        gitlab_url="https://git.example.edu",
        gist_url="https://github.example.org/gist",
    )
    offered = {p["id"]: p for p in landing_providers(PageSettings(), hosts)}
    assert offered["gh"]["name"] == "GitHub (github.example.org)"
    assert offered["gh"]["host"] == "github.example.org"
    assert offered["gh"]["placeholder"] == "org/repo or https://github.example.org/org/repo"
    assert offered["gl"]["name"] == "GitLab (git.example.edu)"
    assert "https://git.example.edu/group/project" in offered["gl"]["placeholder"]
    assert offered["gist"]["host"] == "github.example.org/gist"
    page = settings_json(Pages(PageSettings(), hosts).landing())
    assert "github.com" not in json.dumps(page) and "gitlab.com" not in json.dumps(page)


def test_the_landing_page_offers_only_the_enabled_providers_in_binderhub_order():
    pages = PageSettings(repo_providers=["git", "GitLabRepoProvider", "zenodo", "gl"])
    assert pages.repo_providers == ["git", "gl", "zenodo"]
    offered = settings_json(Pages(pages).landing())["providers"]
    assert [p["id"] for p in offered] == ["gl", "git", "zenodo"]
    assert [p["id"] for p in repoproviders(ProviderSettings(), pages)] == ["gl", "git", "zenodo"]
    assert len(repoproviders(ProviderSettings(), PageSettings())) == len(DEFAULT_PROVIDERS)


def test_the_badge_snippets_use_the_badge_base_url():
    pages = Pages(PageSettings(badge_base_url="https://mybinder.example.org"))
    assert settings_json(pages.landing())["badgeBaseUrl"] == "https://mybinder.example.org/"


def test_page_settings_load_from_their_binderhub_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BINDER_BANNER_MESSAGE", "<b>hi</b>")
    monkeypatch.setenv("BINDER_ABOUT_MESSAGE", "about")
    monkeypatch.setenv("BINDER_EXTRA_HEADER", "<meta name=x>")
    monkeypatch.setenv("BINDER_EXTRA_FOOTER_SCRIPTS", '{"ga": "ga()"}')
    monkeypatch.setenv("BINDER_TEMPLATE_PATH", str(tmp_path))
    monkeypatch.setenv("BINDER_EXTRA_STATIC_PATH", str(tmp_path))
    monkeypatch.setenv("BINDER_EXTRA_STATIC_URL_PREFIX", "/assets")
    monkeypatch.setenv("BINDER_BADGE_BASE_URL", "https://mybinder.org")
    monkeypatch.setenv("BINDER_REPO_PROVIDERS", '["GitHubRepoProvider"]')
    pages = BinderConfig().pages
    assert pages.model_dump() == {
        "banner_message": "<b>hi</b>",
        "about_message": "about",
        "extra_header": "<meta name=x>",
        "extra_footer_scripts": {"ga": "ga()"},
        "template_path": str(tmp_path),
        "extra_static_path": str(tmp_path),
        "extra_static_url_prefix": "assets/",
        "badge_base_url": "https://mybinder.org/",
        "repo_providers": ["gh"],
    }


@pytest.mark.parametrize(
    ("flat", "bad", "said"),
    [
        ("template_path", "/no/such/folder", "is not a folder"),
        ("extra_static_path", "/no/such/folder", "is not a folder"),
        ("extra_static_url_prefix", "/", "cannot be empty"),
        ("badge_base_url", "mybinder.org", "not an http(s) URL"),
        ("repo_providers", ["bitbucket"], "'bitbucket' is not a provider"),
    ],
)
def test_a_bad_page_setting_is_refused_under_its_name(flat: str, bad: Any, said: str):
    with pytest.raises(ConfigError) as error:
        BinderConfig(**{flat: bad})
    assert f"BINDER_{flat.upper()}" in str(error.value)
    assert said in str(error.value)


def test_the_about_page_is_a_page_api_only_mode_does_not_serve():
    assert route_kind("/about") == "page"
    assert route_kind("/extra_static/site.css") == "other"
