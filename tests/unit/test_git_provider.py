import pytest

from binder_actors.providers import InvalidSpec, parse_spec
from binder_actors.providers.git import pick_sha


@pytest.mark.parametrize(
    ("spec", "repo_url", "ref"),
    [
        ("https%3A%2F%2Fexample.org%2Frepo.git/main", "https://example.org/repo.git", "main"),
        ("git%3A%2F%2F127.0.0.1%3A9418%2Frepo/HEAD", "git://127.0.0.1:9418/repo", "HEAD"),
        ("git%40example.org%3Aorg%2Frepo.git/v1.0", "ssh://git@example.org/org/repo.git", "v1.0"),
        ("https%3A%2F%2Fexample.org%2Frepo/feature%2Fx", "https://example.org/repo", "feature/x"),
        ("https%3A%2F%2Fexample.org%2Frepo/" + "a" * 40, "https://example.org/repo", "a" * 40),
    ],
)
def test_git_specs_parse_to_url_and_ref(spec, repo_url, ref):
    parsed = parse_spec("git", spec)
    assert (parsed.repo_url, parsed.unresolved_ref, parsed.build_slug) == (repo_url, ref, repo_url)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("https%3A%2F%2Fexample.org%2Frepo", "has no ref"),
        ("https%3A%2F%2Fexample.org%2Frepo/", "has no ref"),
        ("ext%3A%3Ash%20-c%20id/HEAD", "not a repository URL"),
        ("-uhttps%3A%2F%2Fx/HEAD", "not a repository URL"),
        ("file%3A%2F%2F%2Fetc/HEAD", "BINDER_ALLOW_LOCAL_REPOS"),
        ("%2Fetc%2Fpasswd/HEAD", "BINDER_ALLOW_LOCAL_REPOS"),
        ("ftp%3A%2F%2Fexample.org%2Fr/HEAD", "supported repository URL"),
        ("https%3A%2F%2Fexample.org%2Frepo/--upload-pack%3Dtouch", "not a valid git ref"),
        ("https%3A%2F%2Fexample.org%2Frepo/main%0Aevil", "not a valid git ref"),
        ("https%3A%2F%2F/HEAD", "has no host"),
    ],
)
def test_bad_git_specs_raise_invalid_spec_with_help(spec, message):
    with pytest.raises(InvalidSpec, match=message):
        parse_spec("git", spec)


def test_local_paths_only_when_allowed():
    parsed = parse_spec("git", "file%3A%2F%2F%2Fsrv%2Frepo/HEAD", allow_local_repos=True)
    assert parsed.repo_url == "file:///srv/repo"


LS_REMOTE = (
    "1111111111111111111111111111111111111111\tHEAD\n"
    "2222222222222222222222222222222222222222\trefs/heads/main\n"
    "3333333333333333333333333333333333333333\trefs/tags/v1\n"
    "4444444444444444444444444444444444444444\trefs/tags/v1^{}\n"
)


@pytest.mark.parametrize(
    ("ref", "sha"),
    [("HEAD", "1" * 40), ("main", "2" * 40), ("v1", "4" * 40), ("refs/heads/main", "2" * 40), ("tags/v1", "4" * 40)],
)
def test_pick_sha_prefers_exact_then_branch_then_peeled_tag(ref, sha):
    assert pick_sha(LS_REMOTE, ref) == sha


# `git ls-remote <url> <ref>` matches refs by their tail: asked for `main`, it also lists
# `refs/heads/feature/main` and `refs/remotes/origin/main`, and lists those alone when `main` is gone.
TAIL_MATCHES = (
    "5555555555555555555555555555555555555555\trefs/heads/feature/main\n"
    "6666666666666666666666666666666666666666\trefs/remotes/origin/main\n"
    "7777777777777777777777777777777777777777\trefs/pull/12/head\n"
)


@pytest.mark.parametrize(
    ("output", "ref", "sha"),
    [
        (TAIL_MATCHES, "main", None),  # only other refs ending in /main: `main` is not there
        (TAIL_MATCHES, "head", None),
        (TAIL_MATCHES + LS_REMOTE, "main", "2" * 40),  # the branch itself wins over its namesakes
        (TAIL_MATCHES, "feature/main", "5" * 40),
        (TAIL_MATCHES, "pull/12/head", "7" * 40),  # refs/<ref>, as git itself reads a ref name
        (LS_REMOTE, "nothing", None),
        ("", "main", None),
    ],
)
def test_pick_sha_finds_only_the_ref_asked_for(output, ref, sha):
    assert pick_sha(output, ref) == sha
