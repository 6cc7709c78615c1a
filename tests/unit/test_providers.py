"""Every provider's spec parsing, table-driven, with BinderHub's published rule cases."""

import re

import pytest

from binder_actors.config import ProviderSettings
from binder_actors.names import image_name
from binder_actors.providers import PROVIDERS, InvalidSpec, parse_spec

SHA = "339cda9f2c2f5f8f2a3c5cb4e02a1b8a2e5a4f1d"


@pytest.mark.parametrize(
    ("provider", "spec", "repo_url", "ref", "slug"),
    [
        ("gh", "user/repo/master", "https://github.com/user/repo", "master", "user-repo"),
        ("gh", "user/repo/hotfix/squash-bug", "https://github.com/user/repo", "hotfix/squash-bug", "user-repo"),
        ("gh", "user/repo/feature/save_world", "https://github.com/user/repo", "feature/save_world", "user-repo"),
        (
            "gh",
            "a/long/specification/with/many/slashes",
            "https://github.com/a/long",
            "specification/with/many/slashes",
            "a-long",
        ),
        ("gh", "user/repo.git/HEAD", "https://github.com/user/repo", "HEAD", "user-repo"),
        ("gh", "user/repo/feature%2Fx", "https://github.com/user/repo", "feature/x", "user-repo"),
        (
            "gh",
            "binder-examples/requirements/HEAD",
            "https://github.com/binder-examples/requirements",
            "HEAD",
            "binder-examples-requirements",
        ),
        ("gist", "user/0123abcd", "https://gist.github.com/user/0123abcd.git", "", "0123abcd"),
        ("gist", "user/0123abcd/" + SHA, "https://gist.github.com/user/0123abcd.git", SHA, "0123abcd"),
        (
            "gl",
            "gitlab-org%2Fgitlab-foss/master",
            "https://gitlab.com/gitlab-org/gitlab-foss.git",
            "master",
            "gitlab_-org-gitlab_-foss",
        ),
        ("gl", "group%2Fsub%2Fproject/v1.0", "https://gitlab.com/group/sub/project.git", "v1.0", "group-sub-project"),
        (
            "git",
            "https%3A%2F%2Fgithub.com%2Fbinder-examples%2Fconda/main",
            "https://github.com/binder-examples/conda",
            "main",
            "https://github.com/binder-examples/conda",
        ),
        (
            "git",
            "git%40github.com%3Aorg%2Frepo.git/HEAD",
            "ssh://git@github.com/org/repo.git",
            "HEAD",
            "ssh://git@github.com/org/repo.git",
        ),
        ("zenodo", "10.5281/zenodo.3242074", "10.5281/zenodo.3242074", "", "zenodo-3242074"),
        ("figshare", "10.6084/m9.figshare.9782777.v1", "10.6084/m9.figshare.9782777.v1", "", "figshare-9782777.v1"),
        ("dataverse", "10.7910/DVN/TJCLKP", "10.7910/DVN/TJCLKP", "", "dataverse-dvn-2ftjclkp"),
        (
            "hydroshare",
            "https://www.hydroshare.org/resource/142c59757ed54de1816777828c9716e7",
            "https://www.hydroshare.org/resource/142c59757ed54de1816777828c9716e7",
            "",
            "hydroshare-142c59757ed54de1816777828c9716e7",
        ),
        (
            "hydroshare",
            "10.4211/hs.b8f6eae9d89241cf8b5904033460af61",
            "https://www.hydroshare.org/resource/b8f6eae9d89241cf8b5904033460af61",
            "",
            "hydroshare-b8f6eae9d89241cf8b5904033460af61",
        ),
        (
            "ckan",
            "https://demo.ckan.org/dataset/sample-dataset-1",
            "https://demo.ckan.org/dataset/sample-dataset-1",
            "",
            "ckan-sample-dataset-1",
        ),
        (
            "ckan",
            "https%3A%2F%2Fdata.depositar.io%2Fdataset%2Fsea-turtles%2Fhistory%2F93df7fd0",
            "https://data.depositar.io/dataset/sea-turtles/history/93df7fd0",
            "",
            "ckan-sea-turtles",
        ),
        ("swh", "swh:1:dir:" + "a" * 40, "swh:1:dir:" + "a" * 40, "a" * 40, "swh-" + "a" * 40),
        (
            "swh",
            "swh:1:rev:" + "b" * 40 + ";origin=https://github.com/x/y",
            "swh:1:rev:" + "b" * 40,
            "b" * 40,
            "swh-" + "b" * 40,
        ),
    ],
)
def test_specs_parse_as_binderhub_parses_them(provider, spec, repo_url, ref, slug):
    parsed = parse_spec(provider, spec)
    assert (parsed.repo_url, parsed.unresolved_ref, parsed.build_slug) == (repo_url, ref, slug)


@pytest.mark.parametrize(
    ("provider", "spec", "message"),
    [
        ("gh", "nothing_to_split", 'Spec is not of the form "user/repo/ref"'),
        ("gh", "short/suggestion", 'Did you mean "short/suggestion/HEAD"?'),
        ("gh", "user/repo/", "Spec is not of the form"),
        ("gh", "us er/repo/HEAD", "not a valid GitHub user name"),
        ("gh", "user/..%2F..%2Fadmin/HEAD", "not a valid GitHub repository name"),
        ("gh", "user/repo/--upload-pack%3Dx", "not a valid git ref"),
        ("gh", "user/repo/main%0Aevil", "not a valid git ref"),
        ("gist", "user", "username/gistId"),
        ("gist", "user/not-hex!", "not a gist id"),
        ("gl", "gitlab-org%2Fgitlab-foss", "Did you mean"),
        ("gl", "justone/HEAD", "not a GitLab project path"),
        ("gl", "a%2F..%2Fb/HEAD", "not a GitLab project path"),
        ("zenodo", "zenodo.3242074", "not a DOI"),
        ("figshare", "10.6084/m9 figshare", "not a DOI"),
        ("dataverse", "DVN/TJCLKP", "not a DOI"),
        ("hydroshare", "not-a-resource", "not recognized"),
        ("ckan", "https://demo.ckan.org/group/roger", "not a CKAN dataset URL"),
        ("ckan", "ftp://demo.ckan.org/dataset/x", "not a CKAN dataset URL"),
        ("swh", "swh:1:cnt:" + "a" * 40, "not a SWHID"),
        ("swh", "swh:1:dir:abc", "not a SWHID"),
        ("svn", "x/y", "Unknown provider 'svn'. Supported providers: ckan, dataverse, figshare, gh, gist, git, gl"),
    ],
)
def test_bad_specs_say_what_is_wrong(provider, spec, message):
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        parse_spec(provider, spec)


def test_short_gh_spec_naming_a_ref_gets_no_suggestion():
    with pytest.raises(InvalidSpec) as raised:
        parse_spec("gh", "short/HEAD")
    assert "Did you mean" not in str(raised.value)


def test_hosts_come_from_settings():
    settings = ProviderSettings(github_url="https://github.example.org/", gitlab_url="http://127.0.0.1:9000")
    assert parse_spec("gh", "org/repo/HEAD", settings=settings).repo_url == "https://github.example.org/org/repo"
    assert parse_spec("gl", "g%2Fp/HEAD", settings=settings).repo_url == "http://127.0.0.1:9000/g/p.git"


def test_every_provider_is_registered_with_display_labels():
    assert sorted(PROVIDERS) == sorted(
        ["gh", "gist", "gl", "git", "zenodo", "figshare", "hydroshare", "dataverse", "ckan", "swh"]
    )
    for provider in PROVIDERS.values():
        assert provider.display_name and provider.labels.text


def test_image_name_of_binderhub_example():
    parsed = parse_spec("gh", "binder-examples/requirements/HEAD")
    name = image_name("", parsed.build_slug, "339cda9f2c2f5f8f2a3c5cb4e02a1b8a2e5a4f1d")
    assert name == "binder-2dexamples-2drequirements-55ab5c:339cda9f2c2f5f8f2a3c5cb4e02a1b8a2e5a4f1d"
