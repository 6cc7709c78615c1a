"""Support of the Kubernetes builder tests: build requests, repo2docker's log lines, the emulator's requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from binder_actors.models import BuildRequest
from binder_actors.providers.base import ResolvedRef
from tests.kube_emulator import KubeEmulator

T = TypeVar("T")
NS = "default"
DEADLINE = 10.0


def r2d(message: str, phase: str = "building") -> str:
    """One line of `repo2docker --json-logs`."""
    return json.dumps({"message": message + "\n", "phase": phase})


def request_for(
    repo: str = "binder-examples/requirements",
    sha: str = "0123456789abcdef",
    image_prefix: str = "registry.example.org/binder/",
) -> BuildRequest:
    resolved = ResolvedRef(
        provider="gh",
        spec=f"{repo}/HEAD",
        repo_url=f"https://github.com/{repo}",
        unresolved_ref="HEAD",
        resolved_ref=sha,
        build_slug=repo,
        ref_url=f"https://github.com/{repo}/tree/{sha}",
        persistent_spec=f"{repo}/{sha}",
    )
    return BuildRequest.for_ref(resolved, image_prefix=image_prefix)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 3 * DEADLINE))


def posts(emulator: KubeEmulator) -> int:
    return sum(1 for method, _ in emulator.requests if method == "POST")
