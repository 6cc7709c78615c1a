"""The culler's decisions (ActivityMonitor's pure `cull_verdict`), over hub user models as the hub lists them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from binder_actors.actors.activity_monitor import cull_verdict
from binder_actors.hub_models import MANAGED_GROUP, HubUser

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
TIMEOUT = 600.0


def ago(seconds: float) -> str:
    """A hub timestamp `seconds` before NOW, in the hub's format."""
    return (NOW - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def server(
    active: float | None = 10, started: float | None = 100, ready: bool = True, pending: str | None = None
) -> dict[str, Any]:
    return {
        "ready": ready,
        "pending": pending,
        "url": "/user/u/",
        "started": None if started is None else ago(started),
        "last_activity": None if active is None else ago(active),
    }


def user(
    *servers: dict[str, Any],
    admin: bool = False,
    created: float | None = 3600,
    groups: tuple[str, ...] = (MANAGED_GROUP,),
) -> HubUser:
    names = ["", *(f"s{i}" for i in range(1, len(servers)))][: len(servers)]
    return HubUser.model_validate(
        {
            "name": "u",
            "admin": admin,
            "groups": list(groups),
            "created": None if created is None else ago(created),
            "servers": dict(zip(names, servers, strict=True)),
        }
    )


@pytest.mark.parametrize(
    ("hub_user", "max_age", "cull", "reason"),
    [
        (user(server(active=601)), 0, True, "idle for 601s"),
        (user(server(active=599)), 0, False, "server '' active 599s ago"),
        (user(server(active=10, started=7200)), 3600, True, "running for 7200s (max age 3600s)"),
        (user(server(active=10, started=7200)), 0, False, "active 10s ago"),  # no max age: activity counts
        (user(server(active=None, started=700)), 0, True, "idle for 700s"),  # never active: since its start
        (user(server(active=None, started=500)), 0, False, "active 500s ago"),
        (user(server(active=None, started=None)), 0, False, "has no activity or start time"),
        (user(server(active=5000, pending="spawn")), 0, False, "pending spawn"),
        (user(server(active=5000, pending="stop")), 0, False, "pending stop"),
        (user(server(active=5000, ready=False)), 0, False, "server '' is not ready"),
        (user(server(active=5000), admin=True), 0, False, "admin user"),
        (user(server(active=5000, started=9000), admin=True), 60, False, "admin user"),
        (user(server(active=700), server(active=800)), 0, True, "idle for 700s"),
        (user(server(active=700), server(active=30)), 0, False, "server 's1' active 30s ago"),
        (user(server(active=700), server(active=800, pending="spawn")), 0, False, "server 's1' is pending spawn"),
        (user(server(started=7200), server(started=60)), 3600, False, "active 10s ago"),  # max age: all servers
        (user(created=601), 0, True, "no server, created 601s ago"),  # a leftover of a launch
        (user(created=30), 0, False, "no server, created 30s ago"),
        (user(created=None), 0, False, "no server and no creation time"),
        # A user of a shared hub that binder-actors did not create: never culled, idle or serverless.
        (user(server(active=5000, started=9000), groups=()), 60, False, "not created by binder-actors"),
        (user(created=5000, groups=("students",)), 0, False, "not created by binder-actors"),
    ],
)
def test_cull_verdicts(hub_user, max_age, cull, reason):
    verdict = cull_verdict(hub_user, NOW, timeout=TIMEOUT, max_age=max_age)
    assert (verdict.cull, reason in verdict.reason) == (cull, True), verdict
