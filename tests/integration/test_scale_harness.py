"""`python -m bench scale` (the load harness, a test tool) runs tiny and ends with its JSON line.

It starts its own stack in a subprocess (its own Ray, hub and loopback server, as a user would run
it), so its counts are its own: nothing else launches on its hub.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from binder_actors.config import PROJECT_DIR
from tests.helpers import processes_with_env, wait_for

SESSIONS = 20


def test_scale_harness_launches_through_the_actors_and_prints_its_figures():
    marker = f"BINDER_SCALE_TEST={secrets.token_hex(8)}"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR), marker.split("=")[0]: marker.split("=")[1]}
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--sessions", str(SESSIONS), "--rate", "600", "--minutes", "0"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    assert result["mode"] == "binder-actors"
    assert (result["launches"], result["ready"], result["errors"]) == (SESSIONS, SESSIONS, 0), result["error_kinds"]
    assert result["sessions"] == SESSIONS
    assert result["loopback"]["sessions"] == SESSIONS  # every server was answered by the loopback process
    assert result["launch_rate_per_min"] > 0
    assert 0 < result["control_plane_p50_s"] <= result["control_plane_p95_s"] <= result["control_plane_p99_s"]
    assert result["stages_s"]["resolve_and_cache_check"]["p50"] > 0
    assert result["stages_s"]["session_manager_and_hub"]["p50"] > 0
    assert set(result["scans_at_end_s"]) == {
        "cull_sweep_s",
        "cull_sweep_reading_all_s",
        "sessions_s",
        "health_s",
        "session_count_s",
    }
    assert result["cull_sweep_s"] > 0
    for part in ("SessionManager", "ActivityMonitor", "jupyterhub", "configurable-http-proxy"):
        assert result["processes"][part]["rss_peak_mb"] > 0, part
    # Everything it started is gone: Ray, the hub, its proxy, the loopback server.
    wait_for(lambda: not processes_with_env(marker), timeout=60, what="the harness's processes to end")
