"""How the docker and Kubernetes builders read `repo2docker --json-logs`: one mapping for both.

The failed-build line is as repo2docker 2026.4.0 wrote it on this machine (Debian's docker.io has
no buildx plugin, which it now requires); the others are the shapes its json log takes.
"""

from __future__ import annotations

import pytest

from binder_actors.builders.repo2docker import repo2docker_line

BUILDX_MISSING = (
    "{\"message\": \"Error during build: The buildx plugin must be installed: Command '['docker', 'buildx', "
    '\'version\']\' returned non-zero exit status 1.", "exc_info": "Traceback (most recent call last):\\n...", '
    '"phase": "failed"}'
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"message": "Picked Local content provider.\\n"}', ("building", "Picked Local content provider.", False)),
        (
            '{"message": "Picked Git content provider.\\n", "phase": "fetching"}',
            ("fetching", "Picked Git content provider.", False),
        ),
        ('{"message": "Step 1/20 : FROM ubuntu", "phase": "building"}', ("building", "Step 1/20 : FROM ubuntu", False)),
        ('{"message": "Pushing image\\n", "phase": "pushing", "progress": {}}', ("pushing", "Pushing image", False)),
        ('{"message": "odd", "phase": "launching"}', ("building", "odd", False)),
        ("docker: unknown command: docker buildx", ("building", "docker: unknown command: docker buildx", False)),
        (
            BUILDX_MISSING,
            (
                "building",
                "Error during build: The buildx plugin must be installed: Command '['docker', 'buildx', 'version']'"
                " returned non-zero exit status 1.",
                True,
            ),
        ),
        ('{"message": "Error: no such ref", "phase": "failed"}', ("building", "Error: no such ref", True)),
        ('{"message": "Oops", "phase": "failure"}', ("building", "Oops", True)),
        ("[1, 2]", ("building", "[1, 2]", False)),
    ],
    ids=[
        "no-phase",
        "fetching",
        "building",
        "pushing",
        "other-phase",
        "plain-output",
        "failed-buildx",
        "failed",
        "failure",
        "json-not-a-record",
    ],
)
def test_repo2docker_json_log_line_becomes_a_build_event(line: str, expected: tuple[str, str, bool]) -> None:
    assert repo2docker_line(line) == expected
