"""One real stack per test session, for the integration and browser tests: git daemon and a GitHub
stand-in on 127.0.0.1, JupyterHub + proxy, Ray, Serve."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import ray
from pydantic import SecretStr

from binder_actors.actors import ActorHandles, get_actors
from binder_actors.config import BinderConfig, ProviderSettings
from binder_actors.hub_models import HubUser
from serve_app.embedded import EmbeddedStack, free_port, start_embedded
from tests.auth_stack import auth_stack  # noqa: F401 (the authenticated deployment, for integration and e2e tests)
from tests.conda_channel import ChannelServer, build_channel, host_python_home
from tests.helpers import GitServer, start_git_server
from tests.upstreams import UpstreamServer

# Secrets the stack holds; tests/integration/test_secrets.py looks for them in everything a launch writes.
GITHUB_TOKEN = "ghp_" + "Secret0Github0Token0For0Tests0Only0"
REGISTRY_PASSWORD = "registry-" + "secret-password-for-tests-only"

REQUIREMENTS_REPO = {
    "requirements.txt": "tabulate==0.9.0\n",
    "index.ipynb": '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n',
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/integration and tests/e2e need the real stack: `make unit` leaves them out."""
    for item in items:
        if item.path.parent.name in ("integration", "e2e"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    server = start_git_server(tmp_path_factory.mktemp("git"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamServer]:
    """GitHub's API and git-over-HTTP on 127.0.0.1: the stack's `gh` provider points here."""
    server = UpstreamServer(git_root=tmp_path_factory.mktemp("github"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def conda_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelServer | None]:
    """The test conda channel on 127.0.0.1 (the stack's conda-forge); None without a CPython to package."""
    home = host_python_home()
    if home is None:
        yield None
        return
    root = tmp_path_factory.mktemp("conda-channel")
    build_channel(root, home)
    server = ChannelServer(root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, github: UpstreamServer, conda_channel: ChannelServer | None
) -> Iterator[EmbeddedStack]:
    data_dir = tmp_path_factory.mktemp("binder-data")
    config = BinderConfig(
        data_dir=data_dir,
        event_log=str(data_dir / "launch-events.jsonl"),  # BinderHub's launch events (test_event_log.py)
        port=free_port(),
        ray_num_cpus=2,
        cull_every=3600,
        namespace="binder",
        providers=ProviderSettings(
            github_url=github.url, github_api_url=github.url, github_access_token=SecretStr(GITHUB_TOKEN)
        ),
        # Unused by the local registry, set so the secret scan (test_secrets.py) sees it kept in.
        registry_password=SecretStr(REGISTRY_PASSWORD),
        # Never the internet: conda-forge is the test channel (or nothing listening, without one).
        conda_channel_alias=conda_channel.url if conda_channel else f"http://127.0.0.1:{free_port()}/",
    )
    running = start_embedded(config)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def base_url(stack: EmbeddedStack) -> str:
    return stack.url


@pytest.fixture(scope="session")
def actors(stack: EmbeddedStack) -> ActorHandles:
    assert ray.is_initialized()
    return get_actors(stack.config.namespace)


@pytest.fixture(scope="session")
def requirements_repo(git_server: GitServer) -> tuple[str, str]:
    """(repo URL, commit) of a repository whose requirements.txt pins tabulate."""
    sha = git_server.add("requirements-repo", REQUIREMENTS_REPO)
    return git_server.url("requirements-repo"), sha


def hub_users(stack: EmbeddedStack) -> list[dict]:
    token = stack.config.hub_api_token.get_secret_value()
    return httpx.get(
        stack.config.hub_url + "hub/api/users", headers={"Authorization": f"token {token}"}, timeout=10
    ).json()


def users_of(stack: EmbeddedStack, prefix: str) -> list[HubUser]:
    """The hub's users whose names start with `prefix` (a test's own repository), as the hub's models."""
    return [HubUser.model_validate(user) for user in hub_users(stack) if user["name"].startswith(prefix)]


def complete(user: HubUser) -> bool:
    """A finished session: it has servers, all ready, none pending."""
    return bool(user.servers) and all(server.ready and not server.pending for server in user.servers.values())


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at DEBUG, ours included (setup_logging stops binder_actors' records propagating)."""
    ours = logging.getLogger("binder_actors")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="binder_actors")
    attach = not ours.propagate
    if attach:
        ours.addHandler(caplog.handler)
    yield caplog
    if attach:
        ours.removeHandler(caplog.handler)
