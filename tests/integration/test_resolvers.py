"""Resolution of every provider against local servers answering like the real APIs, and RefResolver's caches."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
from collections.abc import Iterator

import pytest
import ray

from binder_actors.actors.ref_resolver import RefResolver
from binder_actors.config import BinderConfig, ProviderSettings
from binder_actors.models import ResolveRequest
from binder_actors.providers import ResolvedRef, ResolveError, resolve_once
from serve_app.embedded import EmbeddedStack
from tests.helpers import git_spec, make_repo, wait_for
from tests.upstreams import UpstreamServer

SHA_A = "a" * 40
SHA_B = "b" * 40
SECRET = "ghp_notarealtokenbutsecret0123456789"


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer()
    tables = server.tables
    tables.github_refs = {
        "org/repo": {"HEAD": SHA_A, "v1.0": SHA_B, "feature/x": SHA_B},
        "org/renamed": {"HEAD": SHA_A},
    }
    tables.gists = {
        "0123abcd": {"public": True, "versions": [SHA_B, SHA_A]},
        "5ec3e7": {"public": False, "versions": [SHA_A]},
    }
    tables.gitlab_refs = {"group/sub/project": {"main": SHA_A}}
    tables.dois = {
        "10.5281/zenodo.3242073": "/records/3242074",  # a concept DOI leads to the latest version
        "10.6084/m9.figshare.9782777": "/articles/dataset/name/9782777",
        "10.6084/m9.figshare.9782777.v3": "/articles/dataset/name/9782777/3",
        "10.7910/DVN/TJCLKP": "/dataset.xhtml?persistentId=doi:10.7910/DVN/TJCLKP",
        "10.5281/zenodo.666": "http://169.254.169.254/latest/meta-data/",
    }
    tables.dataverse = {
        "doi:10.7910/DVN/TJCLKP": {
            "id": 3035124,
            "authority": "10.7910",
            "identifier": "DVN/TJCLKP",
            "persistentUrl": "https://doi.org/10.7910/DVN/TJCLKP",
            "latestVersion": {"versionNumber": 3, "versionMinorNumber": 0},
        }
    }
    tables.hydroshare_modified = {"142c59757ed54de1816777828c9716e7": "2019-05-08T16:49:55.520123Z"}
    tables.ckan_modified = {"sample-dataset-1": "2024-04-02T02:10:31.123456"}
    tables.ckan_activities = {"93df7fd0": "2024-04-02T02:10:31.000000"}
    tables.swh = {
        f"directory/{'d' * 40}": {"entries": []},
        f"release/{'e' * 40}": {"target_type": "revision", "target": SHA_A},
        f"snapshot/{'f' * 40}": {
            "branches": {
                "HEAD": {"target_type": "alias", "target": "refs/heads/main"},
                "refs/heads/main": {"target_type": "revision", "target": SHA_B},
            }
        },
    }
    yield server
    server.stop()


def config_for(server: UpstreamServer, **overrides: object) -> BinderConfig:
    settings = ProviderSettings(
        github_url="https://github.example.org",
        github_api_url=server.url,
        github_access_token=SECRET,
        gitlab_url=server.url,
        doi_resolver_url=f"{server.url}/doi",
        hydroshare_url=server.url,
        swh_url=server.url,
    )
    values: dict[str, object] = {"providers": settings, "allow_local_repos": True, "upstream_timeout": 5}
    return BinderConfig(**{**values, **overrides})


def resolve(server: UpstreamServer, provider: str, spec: str, **overrides: object) -> ResolvedRef:
    return asyncio.run(resolve_once(provider, spec, config_for(server, **overrides)))


@pytest.mark.parametrize(
    ("provider", "spec", "resolved_ref", "slug", "persistent", "ref_url"),
    [
        (
            "gh",
            "org/repo/HEAD",
            SHA_A,
            "org-repo",
            f"org/repo/{SHA_A}",
            f"https://github.example.org/org/repo/tree/{SHA_A}",
        ),
        ("gh", "org/repo/feature%2Fx", SHA_B, "org-repo", f"org/repo/{SHA_B}", None),
        ("gh", "org/repo.git/v1.0", SHA_B, "org-repo", f"org/repo/{SHA_B}", None),
        ("gist", "someone/0123abcd", SHA_B, "0123abcd", f"someone/0123abcd/{SHA_B}", None),
        ("gist", f"someone/0123abcd/{SHA_A}", SHA_A, "0123abcd", f"someone/0123abcd/{SHA_A}", None),
        ("gl", "group%2Fsub%2Fproject/main", SHA_A, "group-sub-project", f"group%2Fsub%2Fproject/{SHA_A}", None),
        ("zenodo", "10.5281/zenodo.3242073", "3242074", "zenodo-3242074", "10.5281/zenodo.3242074", None),
        (
            "figshare",
            "10.6084/m9.figshare.9782777",
            "9782777.v1",
            "figshare-9782777.v1",
            "10.6084/m9.figshare.9782777.v1",
            None,
        ),
        (
            "figshare",
            "10.6084/m9.figshare.9782777.v3",
            "9782777.v3",
            "figshare-9782777.v3",
            "10.6084/m9.figshare.9782777.v3",
            None,
        ),
        (
            "dataverse",
            "10.7910/DVN/TJCLKP",
            "3035124.v3.0",
            "dataverse-dvn-2ftjclkp",
            "10.7910/DVN/TJCLKP",
            "https://doi.org/10.7910/DVN/TJCLKP",
        ),
        (
            "hydroshare",
            "10.4211/hs.142c59757ed54de1816777828c9716e7",
            "142c59757ed54de1816777828c9716e7.v1557334195",
            "hydroshare-142c59757ed54de1816777828c9716e7.v1557334195",
            None,
            None,
        ),
        ("swh", "swh:1:dir:" + "d" * 40, "d" * 40, "swh-" + "d" * 40, "swh:1:dir:" + "d" * 40, None),
        ("swh", "swh:1:rel:" + "e" * 40, SHA_A, "swh-" + SHA_A, f"swh:1:rev:{SHA_A}", None),
        ("swh", "swh:1:snp:" + "f" * 40, SHA_B, "swh-" + SHA_B, f"swh:1:rev:{SHA_B}", None),
    ],
)
def test_each_provider_resolves_against_its_api(upstream, provider, spec, resolved_ref, slug, persistent, ref_url):
    resolved = resolve(upstream, provider, spec)
    assert (resolved.resolved_ref, resolved.build_slug) == (resolved_ref, slug)
    if persistent:
        assert resolved.persistent_spec == persistent
    if ref_url:
        assert resolved.ref_url == ref_url


def test_ckan_dataset_and_its_past_version_resolve(upstream):
    latest = resolve(upstream, "ckan", f"{upstream.url}/ckan/dataset/sample-dataset-1")
    assert (latest.resolved_ref, latest.build_slug) == ("sample-dataset-1.v1712023831", "ckan-sample-dataset-1")
    past = resolve(upstream, "ckan", f"{upstream.url}/ckan/dataset/sample-dataset-1/history/93df7fd0")
    assert past.resolved_ref == "sample-dataset-1.v1712023831"
    with pytest.raises(ResolveError, match="does not know it"):
        resolve(upstream, "ckan", f"{upstream.url}/ckan/dataset/nosuchdataset")


@pytest.mark.parametrize(
    ("provider", "spec", "status", "message"),
    [
        ("gh", "org/repo/nosuchref", 404, "Could not resolve ref for gh:org/repo/nosuchref"),
        ("gh", "org/missing/HEAD", 404, "Could not resolve ref for gh:org/missing/HEAD"),
        ("gist", "someone/5ec3e7", 403, "secret"),
        ("gist", f"someone/0123abcd/{'c' * 40}", 404, "no such revision"),
        ("gl", "group%2Fsub%2Fproject/nope", 404, "Could not resolve ref for gl:"),
        ("zenodo", "10.5281/zenodo.404", 404, "was not found"),
        ("swh", "swh:1:rev:" + "9" * 40, 404, "not in the Software Heritage archive"),
        ("zenodo", "10.5281/zenodo.666", 400, "link-local"),
    ],
)
def test_unresolvable_specs_fail_with_a_clear_message(upstream, provider, spec, status, message):
    with pytest.raises(ResolveError, match=message) as raised:
        resolve(upstream, provider, spec)
    assert raised.value.status_code == status


def test_git_ref_that_only_ends_like_another_branch_is_not_found(upstream, tmp_path):
    sha = make_repo(tmp_path, "repo", {"README.md": "one branch\n"})
    subprocess.run(["git", "-C", str(tmp_path / "repo"), "branch", "feature/dev"], check=True)
    spec = git_spec(str(tmp_path / "repo"), "feature/dev")
    assert resolve(upstream, "git", spec).resolved_ref == sha
    with pytest.raises(ResolveError, match="no branch, tag or HEAD by that name") as raised:
        resolve(upstream, "git", git_spec(str(tmp_path / "repo"), "dev"))
    assert raised.value.status_code == 404


def test_doi_redirect_into_loopback_is_refused_by_default(upstream):
    with pytest.raises(ResolveError, match="private or loopback"):
        resolve(upstream, "zenodo", "10.5281/zenodo.3242073", allow_local_repos=False)


def test_github_rate_limit_says_when_to_come_back(upstream):
    upstream.tables.github_rate_limited = True
    try:
        with pytest.raises(ResolveError, match=r"GitHub rate limit exceeded. Try again in 20 minutes.") as raised:
            resolve(upstream, "gh", "org/repo/HEAD")
        assert raised.value.status_code == 429
    finally:
        upstream.tables.github_rate_limited = False


def test_github_token_is_sent_but_never_shown(upstream, caplog):
    caplog.set_level(logging.DEBUG)
    before = len(upstream.headers_seen)
    resolve(upstream, "gh", "org/repo/HEAD")
    with pytest.raises(ResolveError) as raised:
        resolve(upstream, "gh", "org/repo/nosuchref")
    assert any(h.get("Authorization") == f"token {SECRET}" for h in upstream.headers_seen[before:])
    assert SECRET not in str(raised.value) and SECRET not in caplog.text
    assert SECRET not in repr(config_for(upstream)) and SECRET not in config_for(upstream).model_dump_json()


def test_slow_upstream_times_out_with_a_message(upstream):
    upstream.tables.github_delay = threading.Event()
    try:
        with pytest.raises(ResolveError, match="Timed out after 0.5s") as raised:
            resolve(upstream, "gh", "org/repo/HEAD", upstream_timeout=0.5)
        assert raised.value.status_code == 504
    finally:
        upstream.tables.github_delay.set()
        upstream.tables.github_delay = None


# --- RefResolver's bounds, on the class itself (no Ray needed) -------------------------------------


def test_resolver_caches_stay_within_their_bound_under_a_stream_of_missing_specs(upstream):
    bound = 25

    async def scenario() -> tuple[list[int], int]:
        resolver = RefResolver(config_for(upstream, ref_cache_size=bound, ref_miss_cache_size=bound))
        sizes = []
        try:
            for n in range(300):
                with pytest.raises(ResolveError, match="Could not resolve ref"):
                    await resolver.resolve(ResolveRequest(provider="gh", spec=f"org/missing-{n}/HEAD"))
                stats = await resolver.stats()
                sizes.append(max(stats.cached, stats.cached_misses))
            before = upstream.count("/repos/org/missing-0/")
            with pytest.raises(ResolveError):  # the oldest miss was evicted: asked upstream again
                await resolver.resolve(ResolveRequest(provider="gh", spec="org/missing-0/HEAD"))
            return sizes, upstream.count("/repos/org/missing-0/") - before
        finally:
            await resolver.upstream.aclose()

    sizes, asked_again = asyncio.run(scenario())
    assert max(sizes) == bound  # filled to its bound, never past it
    assert asked_again >= 1


# --- through the RefResolver actor (real Ray) ----------------------------------------------------


@pytest.fixture
def resolver(stack: EmbeddedStack, upstream: UpstreamServer):
    """A RefResolver of its own (not the stack's named one), configured for the local upstreams."""

    def make(**overrides: object):
        return ray.remote(RefResolver).remote(config_for(upstream, **overrides))

    made: list = []

    def factory(**overrides: object):
        handle = make(**overrides)
        made.append(handle)
        return handle

    yield factory
    for handle in made:
        ray.kill(handle)


def test_a_thousand_concurrent_callers_make_one_upstream_call(resolver, upstream):
    actor = resolver()
    upstream.tables.github_refs["org/popular"] = {"HEAD": SHA_A}
    upstream.tables.github_delay = threading.Event()  # hold the first call until everyone has asked
    try:
        refs = [actor.resolve.remote(ResolveRequest(provider="gh", spec="org/popular/HEAD")) for _ in range(1000)]
        wait_for(lambda: upstream.count("/repos/org/popular/") >= 1, 30, "the first upstream call")
        upstream.tables.github_delay.set()
        results = ray.get(refs, timeout=120)
    finally:
        upstream.tables.github_delay.set()
        upstream.tables.github_delay = None
    assert {r.resolved_ref for r in results} == {SHA_A}
    assert upstream.count("/repos/org/popular/") == 1
    assert ray.get(actor.stats.remote()).upstream_calls == 1


def test_expired_ref_is_revalidated_with_its_etag(resolver, upstream):
    actor = resolver(ref_cache_ttl=0)
    upstream.tables.github_refs["org/etag"] = {"HEAD": SHA_A}
    request = ResolveRequest(provider="gh", spec="org/etag/HEAD")
    not_modified = upstream.statuses[304]
    assert ray.get(actor.resolve.remote(request)).resolved_ref == SHA_A
    assert ray.get(actor.resolve.remote(request)).resolved_ref == SHA_A
    assert upstream.statuses[304] == not_modified + 1  # the second answer cost GitHub no rate limit
    upstream.tables.github_refs["org/etag"]["HEAD"] = SHA_B  # the branch moves: a new ETag, the new commit
    assert ray.get(actor.resolve.remote(request)).resolved_ref == SHA_B


def test_misses_are_cached_for_their_own_ttl(resolver, upstream):
    actor = resolver(ref_miss_ttl=3600)
    request = ResolveRequest(provider="gh", spec="org/repo/not-yet")
    for _ in range(3):
        with pytest.raises(ResolveError):
            ray.get(actor.resolve.remote(request))
    assert upstream.count("/repos/org/repo/commits/not-yet") == 1


def test_vanished_master_falls_back_to_head_with_a_notice(resolver, upstream):
    actor = resolver()
    resolved = ray.get(actor.resolve.remote(ResolveRequest(provider="gh", spec="org/renamed/master")))
    assert resolved.resolved_ref == SHA_A and resolved.unresolved_ref == "master"
    assert "Trying again with HEAD" in resolved.notice and "update your links" in resolved.notice
    with pytest.raises(ResolveError):  # other refs do not fall back
        ray.get(actor.resolve.remote(ResolveRequest(provider="gh", spec="org/renamed/develop")))


def test_banned_and_unlisted_specs_are_refused_before_any_upstream_call(resolver, upstream):
    actor = resolver(banned_specs=["^org/repo"], allowed_specs=["^org/"])
    before = upstream.count("/repos/")
    with pytest.raises(ResolveError, match="temporarily disabled") as banned:
        ray.get(actor.resolve.remote(ResolveRequest(provider="gh", spec="org/repo/HEAD")))
    with pytest.raises(ResolveError, match="not allowed"):
        ray.get(actor.resolve.remote(ResolveRequest(provider="gh", spec="other/repo/HEAD")))
    assert getattr(banned.value, "cause", banned.value).status_code == 403
    assert upstream.count("/repos/") == before
