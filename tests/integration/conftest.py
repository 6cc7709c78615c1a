"""The integration tests' fixtures live in tests/conftest.py (shared with the browser tests in tests/e2e);
here only the Kubernetes API emulator a test has to itself (the builder and recovery tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import REQUIREMENTS_REPO, hub_users
from tests.kube_emulator import KubeEmulator

__all__ = ["REQUIREMENTS_REPO", "hub_users"]


@pytest.fixture
def emulator() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emulator:
        yield emulator
