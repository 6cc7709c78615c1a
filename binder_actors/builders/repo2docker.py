"""How a line of `repo2docker --json-logs` becomes a build event, for the docker and Kubernetes builders."""

from __future__ import annotations

import json

from binder_actors.events import Phase

# repo2docker's phases that are also event phases; its others are reported as building.
_EVENT_PHASES: dict[str, Phase] = {"fetching": "fetching", "building": "building", "pushing": "pushing"}
_FAILURE_PHASES = frozenset({"failed", "failure"})


def repo2docker_line(line: str) -> tuple[Phase, str, bool]:
    """(event phase, message, whether repo2docker reported its failure) of one output line.

    Lines that are not a json record (output of git or docker that repo2docker passed on) are build output.
    """
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return "building", line, False
    message = str(record.get("message", "")).rstrip("\n")
    phase = str(record.get("phase", ""))
    if phase in _FAILURE_PHASES:
        return "building", message, True
    return _EVENT_PHASES.get(phase, "building"), message, False
