"""The build step runner: output as events, the tail and the reason of a failure, and no step outliving its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from binder_actors.builders import BuildFailed
from binder_actors.builders.repo2docker import repo2docker_line
from binder_actors.builders.steps import LOG_TAIL_LINES, run_step, within_build_timeout
from binder_actors.events import BinderEvent
from tests.helpers import wait_for


def run(command: list[str], **options: object) -> list[BinderEvent]:
    events: list[BinderEvent] = []

    async def emit(event: BinderEvent) -> None:
        events.append(event)

    asyncio.run(run_step(command, emit, what="the step", **options))  # type: ignore[arg-type]
    return events


def failure(command: list[str], **options: object) -> BuildFailed:
    with pytest.raises(BuildFailed) as failed:
        run(command, **options)
    return failed.value


def pid_running(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper has stopped running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_output_lines_become_events_of_the_steps_phase() -> None:
    events = run(["sh", "-c", "echo one; echo; echo two >&2"], phase="fetching")
    assert [(e.phase, e.message) for e in events] == [("fetching", "one\n"), ("fetching", "two\n")]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("exit 3", "the step failed (exit code 3)."),
        ("kill -TERM $$", "the step was killed (SIGTERM); please retry."),
        ("kill -KILL $$", "the step was killed (SIGKILL); please retry."),
    ],
)
def test_a_failed_step_says_how_it_ended(script: str, message: str) -> None:
    assert str(failure(["sh", "-c", f"echo before; {script}"])) == message


def test_a_failed_step_keeps_the_last_lines_of_its_output() -> None:
    error = failure(["sh", "-c", "for i in $(seq 100); do echo line $i; done; exit 1"])
    assert error.log_tail == [f"line {i}" for i in range(101 - LOG_TAIL_LINES, 101)]


def test_a_line_that_reports_failure_fails_the_step_with_its_reason() -> None:
    line = '{"message": "Error during build: no buildx", "phase": "failed"}'
    error = failure(["echo", line], read_line=repo2docker_line)
    assert str(error) == "the step failed (exit code 0): Error during build: no buildx"


def test_what_a_step_leaves_running_in_its_group_is_stopped_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    run(["sh", "-c", f"sleep 300 >/dev/null 2>&1 & echo $! > {pid_file}"])
    wait_for(lambda: not pid_running(int(pid_file.read_text())), 10, "the daemon to be stopped")


def test_a_build_over_its_timeout_is_stopped_naming_the_setting() -> None:
    with pytest.raises(BuildFailed, match="longer than BINDER_BUILD_TIMEOUT=60s"):
        asyncio.run(within_build_timeout(asyncio.sleep(10), 60, remaining=0.01))


def test_a_step_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """The scheduler's process killed (SIGKILL, no cleanup of its own): its running step is killed too."""
    pid_file = tmp_path / "step.pid"
    parent_code = textwrap.dedent(
        f"""
        import asyncio
        from binder_actors.builders.steps import run_step

        async def emit(event):
            pass

        asyncio.run(run_step(["sh", "-c", "echo $$ > {pid_file}; exec sleep 300"], emit, what="step"))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", parent_code], env=env)
    try:
        step = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "the step to start"))
        assert pid_running(step)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    wait_for(lambda: not pid_running(step), 10, "the step to die with its parent")
