"""Records (zenodo, figshare, dataverse, hydroshare, ckan) and Software Heritage directories fetched from local
stand-ins of their upstreams, as repo2docker lays them out, and launched end to end on the embedded default.

The launches run in a deployment of their own on the session's Ray and hub (its own actors and Serve
app at /records/), which allows loopback upstreams (BINDER_ALLOW_LOCAL_REPOS): the stand-ins live on
127.0.0.1, and the session's deployment keeps refusing them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from ray import serve

from binder_actors.actors import ensure_actors, kill_actors
from binder_actors.builders import BuildFailed
from binder_actors.builders.fetch import fetch_checkout
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.providers import resolve_once
from serve_app import build_app
from serve_app.embedded import EmbeddedStack
from tests.helpers import read_events, run_in_kernel, wait_for
from tests.upstreams import UpstreamServer, zip_bytes

NAMESPACE = "binder-records"
REQUIREMENTS = b"tabulate==0.9.0\n"
HYDROSHARE_ID = "142c59757ed54de1816777828c9716e7"
SWH_DIR = "d" * 40
BIG_SWH_DIR = "b" * 40
SWH_REV = "c" * 40


def notebook(marker: str) -> bytes:
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": [f"'{marker}'"]}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def record_files(marker: str) -> dict[str, bytes]:
    return {"requirements.txt": REQUIREMENTS, "index.ipynb": notebook(marker), "data/values.csv": b"a,b\n1,2\n"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer()
    # a software record of one zip holding one folder (GitHub's Zenodo integration): unpacked, flattened
    release = {f"org-repo-abc123/{name}": data for name, data in record_files("zenodo").items()}
    server.add_zenodo_record("10.5281/zenodo.100", "101", {"org-repo-v1.zip": zip_bytes(release)}, software=True)
    server.add_figshare_article("10.6084/m9.figshare.200.v1", "200", 1, record_files("figshare"))
    server.add_dataverse_dataset("10.7910/DVN/RECORD", 300, record_files("dataverse"))
    server.add_hydroshare_resource(HYDROSHARE_ID, record_files("hydroshare"))
    ckan_files = record_files("ckan")  # a CKAN resource is one file: no folders
    ckan_files["values.csv"] = ckan_files.pop("data/values.csv")
    server.add_ckan_dataset("binder-dataset", ckan_files)
    server.add_swh_directory(SWH_DIR, record_files("swh"))
    server.tables.swh[f"revision/{SWH_REV}"] = {"directory": SWH_DIR}  # a revision is fetched as its root directory
    # small to download, large unpacked
    server.add_swh_directory(BIG_SWH_DIR, {"requirements.txt": REQUIREMENTS, "zeros.bin": b"\0" * 100_000})
    # a software record whose zip would write outside the checkout
    evil = zip_bytes({"requirements.txt": REQUIREMENTS, "../../escaped.txt": b"pwned\n"})
    server.add_zenodo_record("10.5281/zenodo.666", "667", {"evil.zip": evil}, software=True)
    yield server
    server.stop()


def provider_settings(server: UpstreamServer, base: BinderConfig | None = None) -> dict[str, object]:
    providers = (base or BinderConfig()).providers.model_copy(
        update={
            "doi_resolver_url": f"{server.url}/doi",
            "figshare_api_url": f"{server.url}/figshare-api/v2",
            "hydroshare_url": server.url,
            "swh_url": server.url,
        }
    )
    return {"providers": providers, "allow_local_repos": True}


SPECS = {
    "zenodo": "10.5281/zenodo.100",
    "figshare": "10.6084/m9.figshare.200.v1",
    "dataverse": "10.7910/DVN/RECORD",
    "hydroshare": HYDROSHARE_ID,
    "swh": f"swh:1:dir:{SWH_DIR}",
}


def spec_of(server: UpstreamServer, provider: str) -> str:
    return f"{server.url}/ckan/dataset/binder-dataset" if provider == "ckan" else SPECS[provider]


def build_path(server: UpstreamServer, provider: str) -> str:
    """The /build path of a provider's record: a CKAN URL is escaped whole, DOIs keep their slash."""
    return f"build/{provider}/{quote(spec_of(server, provider), safe='' if provider == 'ckan' else '/:')}"


def fetch(config: BinderConfig, provider: str, spec: str, dest: Path) -> list[BinderEvent]:
    events: list[BinderEvent] = []

    async def emit(event: BinderEvent) -> None:
        events.append(event)

    async def run() -> None:
        resolved = await resolve_once(provider, spec, config)
        await fetch_checkout(resolved, dest, emit, config)

    asyncio.run(run())
    return events


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("provider", ["zenodo", "figshare", "dataverse", "hydroshare", "ckan", "swh"])
def test_each_provider_fetches_the_records_files_as_repo2docker_lays_them_out(upstream, tmp_path, provider):
    config = BinderConfig(data_dir=tmp_path / "data", upstream_timeout=10, **provider_settings(upstream))
    events = fetch(config, provider, spec_of(upstream, provider), tmp_path / "repo")
    expected = {"requirements.txt", "index.ipynb"} | ({"values.csv"} if provider == "ckan" else {"data/values.csv"})
    assert tree(tmp_path / "repo") == expected
    assert (tmp_path / "repo" / "requirements.txt").read_bytes() == REQUIREMENTS
    assert {e.phase for e in events} == {"fetching"}
    assert events[-1].message.startswith(f"Fetched {len(expected)} files")
    assert not list(tmp_path.glob(".fetch-*")), "the scratch folder was left behind"


def test_a_hydroshare_bag_still_being_prepared_is_waited_for(upstream, tmp_path):
    upstream.tables.preparing[f"/django_irods/download/bags/{HYDROSHARE_ID}"] = 1
    config = BinderConfig(data_dir=tmp_path / "data", upstream_timeout=10, **provider_settings(upstream))
    events = fetch(config, "hydroshare", HYDROSHARE_ID, tmp_path / "repo")
    assert tree(tmp_path / "repo") == {"requirements.txt", "index.ipynb", "data/values.csv"}
    assert any("to be prepared" in e.message for e in events)
    assert upstream.tables.preparing[f"/django_irods/download/bags/{HYDROSHARE_ID}"] == 0


def test_a_software_heritage_revision_is_fetched_as_its_root_directory(upstream, tmp_path):
    config = BinderConfig(data_dir=tmp_path / "data", upstream_timeout=10, **provider_settings(upstream))
    fetch(config, "swh", f"swh:1:rev:{SWH_REV}", tmp_path / "repo")
    assert tree(tmp_path / "repo") == {"requirements.txt", "index.ipynb", "data/values.csv"}


@pytest.mark.parametrize(
    ("provider", "spec", "settings", "message"),
    [
        ("zenodo", "10.5281/zenodo.100", {"content_max_bytes": 500}, "larger than BINDER_CONTENT_MAX_BYTES=500"),
        ("swh", f"swh:1:dir:{BIG_SWH_DIR}", {"content_max_bytes": 20_000}, "unpacked is larger than"),
        ("zenodo", "10.5281/zenodo.666", {}, "'../../escaped.txt', a path outside the repository"),
    ],
    ids=["too-big-download", "too-big-archive", "unsafe-archive"],
)
def test_a_record_too_big_or_unsafe_fails_saying_so(upstream, tmp_path, provider, spec, settings, message):
    config = BinderConfig(data_dir=tmp_path / "data", upstream_timeout=10, **provider_settings(upstream), **settings)
    with pytest.raises(BuildFailed, match=message):
        fetch(config, provider, spec, tmp_path / "work" / "repo")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "work" / "escaped.txt").exists()


def test_a_record_whose_files_are_gone_fails_saying_it_was_not_found(upstream, tmp_path):
    upstream.add_figshare_article("10.6084/m9.figshare.400.v1", "400", 1, {"requirements.txt": REQUIREMENTS})
    upstream.tables.blobs.pop("/ndownloader/files/400-requirements.txt")
    config = BinderConfig(data_dir=tmp_path / "data", upstream_timeout=10, **provider_settings(upstream))
    with pytest.raises(BuildFailed, match="requirements.txt was not found"):
        fetch(config, "figshare", "10.6084/m9.figshare.400.v1", tmp_path / "repo")


@pytest.fixture(scope="module")
def records_url(stack: EmbeddedStack, upstream: UpstreamServer) -> Iterator[str]:
    """A deployment of its own (actors in NAMESPACE, Serve at /records/) on the session's Ray, hub and data."""
    config = stack.config.with_settings(namespace=NAMESPACE, base_url="/records/", **provider_settings(upstream))
    try:
        ensure_actors(config)
        serve.run(build_app(config), name="binder-records", route_prefix="/records")
        url = f"http://{config.host}:{config.port}/records/"
        wait_for(lambda: httpx.get(url + "versions", timeout=30).status_code == 200, 60, "/records/ to serve")
        yield url
    finally:
        serve.delete("binder-records")
        kill_actors(NAMESPACE)


@pytest.mark.parametrize("provider", ["zenodo", "figshare", "dataverse", "hydroshare", "ckan", "swh"])
def test_each_provider_launches_end_to_end_on_the_local_builder(records_url, upstream, provider):
    events = read_events(records_url, build_path(upstream, provider))
    ready = events[-1]
    assert ready["phase"] == "ready", events[-3:]
    assert any(e["phase"] == "fetching" and "Fetched" in e["message"] for e in events)
    code = "import tabulate, json; print(tabulate.__version__, json.load(open('index.ipynb'))['cells'][0]['source'][0])"
    assert run_in_kernel(ready["url"], ready["token"], code).split() == ["0.9.0", f"'{provider}'"]


def test_an_unsafe_record_fails_its_launch_naming_the_file(records_url):
    events = read_events(records_url, "build/zenodo/10.5281/zenodo.666")
    assert events[-1]["phase"] == "failed"
    assert "a path outside the repository" in events[-1]["message"], events[-1]
