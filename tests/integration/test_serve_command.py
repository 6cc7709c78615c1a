"""`binder-actors serve` (what `make serve` runs) starts everything and Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx

from serve_app.embedded import free_port
from tests.helpers import processes_with_env, wait_for


def test_serve_prints_the_url_and_sigint_stops_hub_proxy_and_ray(tmp_path):
    port = free_port()
    data_dir = tmp_path / "serve-data"
    marker = f"BINDER_DATA_DIR={data_dir}"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        command = subprocess.Popen(
            [sys.executable, "-m", "binder_actors.cli", "serve"],
            env={**os.environ, "BINDER_DATA_DIR": str(data_dir), "BINDER_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: "is running at" in log_path.read_text(errors="replace") or command.poll(),
            180,
            "the serve command to start",
        )
        assert command.poll() is None, log_path.read_text()
        assert f"http://127.0.0.1:{port}/" in log_path.read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200
        hub_pid = int((data_dir / "hub" / "jupyterhub.pid").read_text())
        assert hub_pid in processes_with_env(marker)

        command.send_signal(signal.SIGINT)
        command.wait(120)
        assert command.returncode == 0, log_path.read_text()
        assert "Stopped." in log_path.read_text()
        wait_for(lambda: not processes_with_env(marker), 60, "every started process to exit")
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
        for pid in processes_with_env(marker):
            os.kill(pid, signal.SIGKILL)
