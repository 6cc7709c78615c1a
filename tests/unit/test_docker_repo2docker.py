"""How the docker builder reads `repo2docker --json-logs`: lines as repo2docker 2026.4.0 wrote them here."""

from __future__ import annotations

import pytest

from binder_actors.builders.docker import repo2docker_line

# repo2docker 2026.4.0 on this machine: Debian's docker.io has no buildx plugin, which it now requires.
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
            '{"message": "Using local repo /tmp/r2d-repo.\\n", "phase": "fetching"}',
            ("building", "Using local repo /tmp/r2d-repo.", False),
        ),
        ("docker: unknown command: docker buildx", ("building", "docker: unknown command: docker buildx", False)),
        ('{"message": "Pushing image\\n", "phase": "pushing"}', ("pushing", "Pushing image", False)),
        (
            BUILDX_MISSING,
            (
                "building",
                "Error during build: The buildx plugin must be installed: Command '['docker', 'buildx', 'version']'"
                " returned non-zero exit status 1.",
                True,
            ),
        ),
        ('{"message": "Failed", "phase": "failure"}', ("building", "Failed", True)),
        ("[1, 2]", ("building", "[1, 2]", False)),
    ],
    ids=["no-phase", "fetching", "plain-output", "pushing", "failed", "failure", "json-not-a-record"],
)
def test_repo2docker_json_log_line_becomes_a_build_event(line: str, expected: tuple[str, str, bool]) -> None:
    assert repo2docker_line(line) == expected
