import re

import pytest

from binder_actors.names import (
    build_name,
    escape,
    image_name,
    is_valid_image_name,
    user_name_for_repo,
)


@pytest.mark.parametrize(
    ("prefix", "slug", "ref", "expected"),
    [
        # BinderHub's own example: gh binder-examples/requirements.
        ("", "binder-examples-requirements", "339cda9f", "binder-2dexamples-2drequirements-55ab5c:339cda9f"),
        ("r2d-", "binder-examples-requirements", "abc", "r2d-binder-2dexamples-2drequirements-55ab5c:abc"),
        ("", "Org_Name-Repo", "ff", None),
    ],
)
def test_image_name_follows_binderhub(prefix, slug, ref, expected):
    name = image_name(prefix, slug, ref)
    if expected is not None:
        assert name == expected
    assert name == name.lower() and "_" not in name
    assert is_valid_image_name(name)


def test_image_name_fits_in_255_characters_and_stays_unique():
    long_a, long_b = "a" * 400, "a" * 399 + "b"
    name_a, name_b = image_name("", long_a, "x"), image_name("", long_b, "x")
    assert len(name_a.split(":")[0]) == 255
    assert name_a != name_b


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("abc", "abc"), ("a-b", "a-2Db"), ("a/b", "a-2Fb"), ("é", "-C3-A9"), ("\n", "-A")],
)
def test_escape_writes_each_utf8_byte_in_upper_hex(text, escaped):
    assert escape(text, frozenset("abcdefghijklmnopqrstuvwxyz")) == escaped


# Expected values: BinderHub's rule (binderhub/builder.py `_generate_build_name` and `_safe_build_slug`,
# unchanged since commit a9fe7d29, 2020-07-28) evaluated with escapism and hashlib outside this project:
# the ref becomes its first 3 escaped characters, a dash and 2 hex of its sha256.
@pytest.mark.parametrize(
    ("slug", "ref", "expected"),
    [
        (
            "binder-examples-requirements",
            "339cda9f2c2f5f8f2a3c5cb4e02a1b8a2e5a4f1d",
            "build-binder-2dexamples-2drequirements-55ab5c-339-87",
        ),
        ("binder-examples-requirements", "339cda9f", "build-binder-2dexamples-2drequirements-55ab5c-339-58"),
        ("binder-examples/requirements", "a1b2c3d4e5f6", "build-binder-2dexamples-2frequirements-ce138b-a1b-bd"),
        (
            "https://example.org/" + "x" * 100,
            "0123456789abcdef",
            "build-https-3a-2f-2fexample-2eorg-2fxxxxxxxxxxxxx-7d6b55-012-9f",
        ),
        ("Org_Name-Repo", "main-branch", "build-org-5fname-2drepo-a1713d-mai-89"),
        ("gh-user-repo", "-ab", "build-gh-2duser-2drepo-ce30a2--2d-ac"),
        ("s", "é", "build-s-043a71--c3-4a"),
    ],
)
def test_build_name_is_binderhubs(slug: str, ref: str, expected: str) -> None:
    name = build_name(slug, ref)
    assert name == expected
    assert len(name) <= 63


def test_build_name_is_a_dns_label():
    name = build_name("https://example.org/" + "x" * 100, "0123456789abcdef")
    assert len(name) <= 63
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name)


@pytest.mark.parametrize(
    ("repo_url", "prefix"),
    [
        ("git://127.0.0.1:9418/My_Repo.git", "my-repo-"),
        ("https://example.org/org/analysis/", "analysis-"),
        ("https://example.org/" + "n" * 60, "n" * 26 + "-"),
    ],
)
def test_temporary_user_is_repo_name_plus_eight_random_characters(repo_url, prefix):
    first, second = user_name_for_repo(repo_url), user_name_for_repo(repo_url)
    assert first.startswith(prefix) and second.startswith(prefix)
    assert re.fullmatch(r"[a-z0-9-]+-[a-z0-9]{8}", first)
    assert first != second


def test_a_launch_id_names_the_same_user_each_time_without_revealing_itself():
    launch_id = "0123456789abcdef"
    name = user_name_for_repo("https://example.org/org/analysis", launch_id)
    assert name == user_name_for_repo("https://example.org/org/analysis.git", launch_id)
    assert re.fullmatch(r"analysis-[a-z][a-z0-9]{7}", name)
    assert launch_id[:8] not in name
    assert name != user_name_for_repo("https://example.org/org/analysis", "fedcba9876543210")


@pytest.mark.parametrize("bad", ["../etc:passwd", "UPPER:tag", "name", "a:b/c", ""])
def test_invalid_image_names_are_rejected(bad):
    assert not is_valid_image_name(bad)


def test_server_names_are_jupyterhub_safe_slugs():
    from jupyterhub.slugs import is_valid_safe_slug

    from binder_actors.names import server_name_for_launch

    names = {server_name_for_launch() for _ in range(200)}
    assert len(names) == 200
    assert all(is_valid_safe_slug(name) and len(name) == 8 for name in names)
