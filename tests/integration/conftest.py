"""The integration tests' fixtures live in tests/conftest.py (shared with the browser tests in tests/e2e)."""

from tests.conftest import REQUIREMENTS_REPO, hub_users

__all__ = ["REQUIREMENTS_REPO", "hub_users"]
