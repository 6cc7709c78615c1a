"""The one way a builder runs a host-side build step (git, uv, postBuild, repo2docker) and times a build.

A step runs in a process group of its own that dies with it, and with the scheduler's process
however that dies; its output streams as build events and its last lines explain a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol, TypeVar

from binder_actors.builders import BuildFailed, Emit, timeout_message
from binder_actors.events import Phase, progress

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 40

T = TypeVar("T")
# (event phase, message, whether the line reports the step's failure) of one output line.
LineReader = Callable[[str], tuple[Phase, str, bool]]


class ProcessGroups(Protocol):
    """Where a builder records its running steps' process groups (to stop them after a restart)."""

    def started(self, group: int) -> None: ...

    def ended(self, group: int) -> None: ...


async def within_build_timeout(work: Awaitable[T], timeout: int, *, remaining: float | None = None) -> T:
    """`work`, cancelled with BuildFailed naming BINDER_BUILD_TIMEOUT (`timeout`) when it runs past it.

    `remaining`: the seconds left of a build that started before (one a restarted scheduler joins).
    """
    try:
        return await asyncio.wait_for(work, timeout if remaining is None else remaining)
    except asyncio.TimeoutError:
        raise BuildFailed(timeout_message(timeout)) from None


@functools.cache
def _parent_death_prefix() -> tuple[str, ...]:
    """The prefix that has a step killed when the scheduler's process dies (Linux's parent-death signal).

    util-linux `setpriv` sets it between fork and exec in a process of its own: `preexec_fn` would do it
    in our forked child, which CPython documents as unsafe in a process with threads (a Ray worker).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.warning(
            "setpriv (util-linux) is not on PATH: build steps of a killed scheduler run on until the "
            "restarted scheduler stops them"
        )
        return ()
    return (setpriv, "--pdeathsig", "KILL", "--")


def _plain_line(phase: Phase) -> LineReader:
    return lambda line: (phase, line, False)


async def run_step(
    command: list[str],
    emit: Emit,
    *,
    what: str,
    phase: Phase = "building",
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    groups: ProcessGroups | None = None,
    read_line: LineReader | None = None,
) -> None:
    """Run one build step, streaming its output as events; BuildFailed with its tail if it fails.

    `read_line` turns each output line into an event (repo2docker's json log); a line it marks as a
    failure fails the step with that line as the reason, whatever the exit code.
    """
    reader = read_line or _plain_line(phase)
    process = await asyncio.create_subprocess_exec(
        *_parent_death_prefix(),
        *command,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group: whatever it starts is stopped with it
    )
    if groups is not None:
        groups.started(process.pid)
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    reason = ""
    try:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            line_phase, message, failure = reader(line)
            reason = message.strip() if failure else reason
            tail.append(message)
            await emit(progress(line_phase, message))
        code = await process.wait()
    except BaseException:
        kill_group(process.pid)
        await process.wait()
        raise
    finally:
        if groups is not None:
            groups.ended(process.pid)
    # Whatever the step left running in its group (a daemon of postBuild) ends with it.
    kill_group(process.pid)
    if code < 0:
        # Stopped from outside, not by the repository: the machine (out of memory), an operator, or
        # this scheduler's own process ending (Ray stops a worker's children as it exits).
        raise BuildFailed(f"{what} was killed ({signal_name(-code)}); please retry.", list(tail))
    if reason:
        raise BuildFailed(f"{what} failed (exit code {code}): {reason}", list(tail))
    if code != 0:
        raise BuildFailed(f"{what} failed (exit code {code}).", list(tail))


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # real-time signals have no name
        return f"signal {number}"


def kill_group(group: int) -> None:
    """SIGKILL a step's process group, if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(group, signal.SIGKILL)
