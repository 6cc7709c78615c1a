import pytest

from binder_actors.links import parse_binder_url, redirect_path
from binder_actors.providers import InvalidSpec


@pytest.mark.parametrize(
    ("urlpath", "labpath", "filepath", "expected"),
    [
        (None, None, None, ""),
        ("lab", None, None, "lab"),
        ("/lab/tree/a.ipynb", None, None, "lab/tree/a.ipynb"),
        ("voila/render/x.ipynb?x=1", None, None, "voila/render/x.ipynb?x=1"),
        ("lab", "wins.ipynb", None, "doc/tree/wins.ipynb"),  # BinderHub's client: labpath over urlpath
        ("lab", None, "tree.ipynb", "tree/tree.ipynb"),  # and filepath over urlpath
        (None, "", None, "doc/tree/"),  # present but empty still counts, as URLSearchParams.has
        (None, "folder//", None, "doc/tree/folder/"),  # one trailing slash dropped, as its regex does
        (None, "index.ipynb", None, "doc/tree/index.ipynb"),
        (None, "dir/with space.ipynb", None, "doc/tree/dir/with%20space.ipynb"),
        (None, "folder/", None, "doc/tree/folder"),
        (None, None, "notebooks/a.ipynb", "tree/notebooks/a.ipynb"),
        (None, "lab-wins.ipynb", "file.ipynb", "doc/tree/lab-wins.ipynb"),
    ],
)
def test_redirect_path_follows_binderhub_client(urlpath, labpath, filepath, expected):
    assert redirect_path(urlpath, labpath, filepath) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"urlpath": "../../hub/admin"},
        {"urlpath": "%2E%2E/hub"},
        {"urlpath": "//evil.example/x"},
        {"urlpath": "https://evil.example/"},
        {"labpath": "../secret"},
        {"filepath": "a/../../b"},
        {"filepath": "a\nb"},
    ],
)
def test_paths_that_leave_the_server_are_refused(kwargs):
    with pytest.raises(InvalidSpec):
        redirect_path(**kwargs)


@pytest.mark.parametrize(
    ("url", "provider", "spec", "repo_url", "ref", "landing"),
    [
        (
            "https://mybinder.org/v2/gh/binder-examples/requirements/HEAD",
            "gh",
            "binder-examples/requirements/HEAD",
            "https://github.com/binder-examples/requirements",
            "HEAD",
            "",
        ),
        (
            "https://mybinder.org/v2/gh/binder-examples/requirements/HEAD/",
            "gh",
            "binder-examples/requirements/HEAD",
            "https://github.com/binder-examples/requirements",
            "HEAD",
            "",
        ),
        (
            "https://mybinder.org/v2/gh/org/repo/feature%2Fx?labpath=notebooks%2Fintro.ipynb",
            "gh",
            "org/repo/feature%2Fx",
            "https://github.com/org/repo",
            "feature/x",
            "doc/tree/notebooks/intro.ipynb",
        ),
        (
            "https://mybinder.org/v2/gh/org/repo/main?filepath=My+Notebook.ipynb",
            "gh",
            "org/repo/main",
            "https://github.com/org/repo",
            "main",
            "tree/My%20Notebook.ipynb",
        ),
        (
            "https://mybinder.org/v2/gh/org/repo/main?urlpath=%2Flab%2Ftree%2Fa.ipynb",
            "gh",
            "org/repo/main",
            "https://github.com/org/repo",
            "main",
            "lab/tree/a.ipynb",
        ),
        (
            "https://binder.example.edu/services/binder/v2/gl/group%2Fproject/main?urlpath=rstudio",
            "gl",
            "group%2Fproject/main",
            "https://gitlab.com/group/project.git",
            "main",
            "rstudio",
        ),
        (
            "https://mybinder.org/v2/git/https%3A%2F%2Fgit.example.org%2Frepo.git/v1.0",
            "git",
            "https%3A%2F%2Fgit.example.org%2Frepo.git/v1.0",
            "https://git.example.org/repo.git",
            "v1.0",
            "",
        ),
        (
            "https://mybinder.org/v2/zenodo/10.5281/zenodo.3242074/",
            "zenodo",
            "10.5281/zenodo.3242074",
            "10.5281/zenodo.3242074",
            "",
            "",
        ),
        ("https://mybinder.org/repo/org/repo", "gh", "org/repo/master", "https://github.com/org/repo", "master", ""),
        (
            "https://mybinder.org/repo/org/repo/notebooks/a.ipynb",
            "gh",
            "org/repo/master",
            "https://github.com/org/repo",
            "master",
            "notebooks/a.ipynb",
        ),
        ("gh/org/repo/HEAD", "gh", "org/repo/HEAD", "https://github.com/org/repo", "HEAD", ""),
    ],
)
def test_binder_urls_from_the_wild_parse_as_binderhub_reads_them(url, provider, spec, repo_url, ref, landing):
    link = parse_binder_url(url)
    assert (link.provider, link.spec, link.repo_url, link.unresolved_ref, link.redirect_path) == (
        provider,
        spec,
        repo_url,
        ref,
        landing,
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/not/binder",
        "https://mybinder.org/v2/gh",
        "https://mybinder.org/v2/gh/org/repo/HEAD?urlpath=..%2F..%2Fhub%2Fadmin",
        "https://mybinder.org/v2/nosuch/org/repo/HEAD",
        "https://mybinder.org/v2/gh/org/HEAD",
    ],
)
def test_non_binder_or_hostile_urls_are_refused(url):
    with pytest.raises(InvalidSpec):
        parse_binder_url(url)
