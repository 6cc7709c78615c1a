import pytest

from binder_actors.links import redirect_path
from binder_actors.providers import InvalidSpec


@pytest.mark.parametrize(
    ("urlpath", "labpath", "filepath", "expected"),
    [
        (None, None, None, ""),
        ("lab", None, None, "lab"),
        ("/lab/tree/a.ipynb", None, None, "lab/tree/a.ipynb"),
        ("voila/render/x.ipynb?x=1", "ignored", None, "voila/render/x.ipynb?x=1"),
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
