"""BuildScheduler under load and faults: one build per image, queue positions, timeout, restart."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import ray

from binder_actors.actors.build_scheduler import BuildScheduler
from binder_actors.models import BuildRequest, ResolveRequest
from tests.helpers import git_spec, read_events, wait_for


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gated_post_build(pid_file: Path, gate: Path) -> str:
    """A postBuild that records its pid, then waits until the test opens the gate (the workload)."""
    return f"echo $$ > {pid_file}\nwhile [ ! -e {gate} ]; do sleep 0.1; done\n"


def request_for(actors, git_server, name: str) -> BuildRequest:
    spec = git_spec(git_server.url(name), "main")
    resolved = ray.get(actors.ref_resolver.resolve.remote(ResolveRequest(provider="git", spec=spec)))
    return BuildRequest.for_ref(resolved)


async def collect(scheduler, request: BuildRequest) -> list:
    return [await ref async for ref in scheduler.build.remote(request)]


@pytest.fixture
def private_scheduler(stack, tmp_path) -> Iterator:
    """A BuildScheduler of its own (own data dir, the shared server stack), for tighter limits."""
    created = []

    def make(**settings):
        data_dir = tmp_path / f"data-{len(created)}"
        data_dir.mkdir()
        (data_dir / "stacks").symlink_to(stack.config.data_dir / "stacks")
        config = stack.config.with_settings(data_dir=data_dir, **settings)
        handle = ray.remote(BuildScheduler).options(num_cpus=0).remote(config)
        created.append(handle)
        return handle, config

    yield make
    for handle in created:
        ray.kill(handle)


def test_fifty_simultaneous_requests_for_one_image_start_one_build(actors, git_server):
    git_server.add("fifty", {"requirements.txt": "tabulate==0.9.0\n"})
    request = request_for(actors, git_server, "fifty")
    before = ray.get(actors.build_scheduler.stats.remote()).builds_started

    async def fifty() -> list[list]:
        return await asyncio.gather(*(collect(actors.build_scheduler, request) for _ in range(50)))

    streams = asyncio.run(fifty())
    assert [s[-1].phase for s in streams] == ["built"] * 50
    assert all(any(e.phase == "fetching" for e in s) for s in streams)  # joiners get the backlog
    assert ray.get(actors.build_scheduler.stats.remote()).builds_started == before + 1


def test_queued_builds_are_told_their_position_as_it_moves(private_scheduler, actors, git_server, tmp_path):
    gate, pid_file = tmp_path / "gate", tmp_path / "first.pid"
    git_server.add("queue-first", {"postBuild": gated_post_build(pid_file, gate)})
    git_server.add("queue-second", {"requirements.txt": ""})
    git_server.add("queue-third", {"requirements.txt": ""})
    scheduler, _ = private_scheduler(max_concurrent_builds=1)
    requests = [request_for(actors, git_server, n) for n in ("queue-first", "queue-second", "queue-third")]

    async def scenario() -> list[list]:
        loop = asyncio.get_running_loop()

        def queued(count: int):  # an async actor runs calls in no set order: submit one at a time
            return loop.run_in_executor(
                None,
                lambda: wait_for(lambda: ray.get(scheduler.stats.remote()).queued == count, 60, f"{count} queued"),
            )

        first = asyncio.ensure_future(collect(scheduler, requests[0]))
        await loop.run_in_executor(None, lambda: wait_for(pid_file.exists, 120, "the first build to run"))
        second = asyncio.ensure_future(collect(scheduler, requests[1]))
        await queued(1)
        third = asyncio.ensure_future(collect(scheduler, requests[2]))
        await queued(2)
        gate.touch()
        return [await first, await second, await third]

    first, second, third = asyncio.run(scenario())
    assert [s[-1].phase for s in (first, second, third)] == ["built"] * 3
    waiting = [e.message for e in third if e.phase == "waiting"]
    assert waiting == [
        "Waiting for a build slot: position 2 in the queue\n",
        "Waiting for a build slot: position 1 in the queue\n",
    ]
    assert [e.message for e in second if e.phase == "waiting"] == [
        "Waiting for a build slot: position 1 in the queue\n"
    ]


def test_build_over_the_timeout_is_stopped_and_leaves_nothing(private_scheduler, actors, git_server, tmp_path):
    pid_file = tmp_path / "slow.pid"
    git_server.add("too-slow", {"postBuild": gated_post_build(pid_file, tmp_path / "never")})
    scheduler, config = private_scheduler(build_timeout=5)
    events = asyncio.run(collect(scheduler, request_for(actors, git_server, "too-slow")))
    assert events[-1].phase == "failed"
    assert "BINDER_BUILD_TIMEOUT=5s" in events[-1].message
    wait_for(lambda: not pid_alive(int(pid_file.read_text())), 30, "the postBuild process to be killed")
    assert list((config.data_dir / "images").iterdir()) == []
    assert list((config.data_dir / "builds").iterdir()) == []


def test_restarted_scheduler_stops_and_removes_an_interrupted_build(actors, git_server, base_url, tmp_path, stack):
    gate, pid_file = tmp_path / "gate", tmp_path / "restart.pid"
    script = f"if [ ! -e {gate} ]; then echo $$ > {pid_file}; while true; do sleep 0.1; done; fi\n"
    git_server.add("interrupted", {"postBuild": script, "requirements.txt": "tabulate==0.9.0\n"})
    request = request_for(actors, git_server, "interrupted")
    stream = actors.build_scheduler.build.remote(request)
    wait_for(pid_file.exists, 120, "the build to reach postBuild")
    image_dir = stack.config.images_dir / quote(request.image, safe="")
    assert image_dir.is_dir()

    ray.kill(actors.build_scheduler, no_restart=False)
    builds_dir = stack.config.data_dir / "builds"

    def cleaned() -> bool:
        return not image_dir.exists() and not list(builds_dir.glob("*.json"))

    # The restarted actor cleans up in its __init__.
    wait_for(cleaned, 60, "the interrupted build to be removed")
    assert not pid_alive(int(pid_file.read_text()))
    with pytest.raises(ray.exceptions.RayError):
        asyncio.run(collect_generator(stream))

    gate.touch()
    events = read_events(base_url, f"build/git/{git_spec(git_server.url('interrupted'), 'main')}")
    assert events[-1]["phase"] == "ready", events[-1]


async def collect_generator(stream) -> list:
    return [await ref async for ref in stream]


def test_a_request_arriving_after_its_build_ended_does_not_build_again(actors, git_server):
    """Fan-in: a click that missed the cache while the build ran, and asks only after it ended."""
    git_server.add("late-click", {"requirements.txt": ""})
    request = request_for(actors, git_server, "late-click")
    first = asyncio.run(collect(actors.build_scheduler, request))
    started = ray.get(actors.build_scheduler.stats.remote()).builds_started
    late = asyncio.run(collect(actors.build_scheduler, request))
    assert first[-1].phase == "built"
    assert [e.phase for e in late] == ["built"] and "Found built image" in late[0].message
    assert ray.get(actors.build_scheduler.stats.remote()).builds_started == started
