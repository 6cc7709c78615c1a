"""The integration tests' fixtures live in tests/conftest.py (shared with the browser tests in tests/e2e);
here the Kubernetes API emulator a test has to itself (the builder and recovery tests), and the docker
backend's session fixtures (tests/docker_stack.py), shared by its test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import REQUIREMENTS_REPO, hub_users
from tests.docker_stack import cran, docker_stack, engine
from tests.kube_emulator import KubeEmulator

__all__ = ["REQUIREMENTS_REPO", "cran", "docker_stack", "engine", "hub_users"]


@pytest.fixture
def emulator() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emulator:
        yield emulator
