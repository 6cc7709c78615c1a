"""Faults outside the actors: JupyterHub killed and restarted, a Serve replica killed, a build step killed.

Each runs launches through the real stack while the fault happens, then checks the promise: every
launch ends `ready` or in a `failed` event that says to try again, the hub runs exactly the sessions
that were delivered (none half-made, no server process nobody knows), and the service works again
by itself once the fault is gone.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import ray

from binder_actors.actors.build_scheduler import BuildScheduler
from binder_actors.models import BuildRequest, ResolveRequest
from binder_actors.registries.local import MARKER
from tests.conftest import REQUIREMENTS_REPO, complete, users_of
from tests.helpers import git_spec, read_events, wait_for

LAUNCHES = 10
SSE = {"Accept": "text/event-stream"}
RECONNECT_SECONDS = 0.5  # what a browser's EventSource waits before reconnecting


def server_answers(ready: dict) -> bool:
    status = httpx.get(ready["url"] + "api/status", headers={"Authorization": f"token {ready['token']}"}, timeout=30)
    return status.status_code == 200


def singleuser_processes() -> dict[int, str]:
    """pid -> JUPYTERHUB_USER of every session server on this machine (`jupyterhub-singleuser` execs
    `python -m jupyterhub.singleuser`)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if b"jupyterhub-singleuser" not in command and b"jupyterhub.singleuser" not in command:
                continue
            variables = (entry / "environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        users = [item.split("=", 1)[1] for item in variables if item.startswith("JUPYTERHUB_USER=")]
        found[int(entry.name)] = users[0] if users else ""
    return found


def follow_as_eventsource(url: str, deadline_seconds: float = 600) -> tuple[list[dict], int]:
    """Follow a launch stream as a browser's EventSource does: reconnect with Last-Event-ID after a
    dropped connection or an error answer, until `ready`/`failed` or a 204. (events, connections)."""
    events: list[dict] = []
    last_id = ""
    connections = 0
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        connections += 1
        headers = {**SSE, "Last-Event-ID": last_id} if last_id else SSE
        try:
            with httpx.stream("GET", url, headers=headers, timeout=120) as response:
                if response.status_code == 204:
                    return events, connections
                if response.status_code == 200:
                    for line in response.iter_lines():
                        if line.startswith("id:"):
                            last_id = line[3:].strip()
                        elif line.startswith("data:"):
                            events.append(json.loads(line[5:]))
                            if events[-1]["phase"] in ("ready", "failed"):
                                return events, connections
        except httpx.HTTPError:
            pass
        time.sleep(RECONNECT_SECONDS)
    raise AssertionError(f"no end of the launch within {deadline_seconds}s: {events[-3:]}")


def test_hub_killed_and_restarted_during_launches(base_url, git_server, stack):
    name = "hub-killed"
    git_server.add(name, REQUIREMENTS_REPO)
    path = f"build/git/{git_spec(git_server.url(name), 'main')}"
    before = read_events(base_url, path)[-1]
    assert before["phase"] == "ready", before
    assert before["url"].rstrip("/").rsplit("/", 1)[-1] in singleuser_processes().values(), "servers are seen"

    with ThreadPoolExecutor(LAUNCHES) as pool:
        launches = [pool.submit(read_events, base_url, path) for _ in range(LAUNCHES)]
        wait_for(lambda: len(users_of(stack, name)) > 2, 120, "launches to reach the hub")
        assert stack.hub.process is not None
        os.kill(stack.hub.process.pid, signal.SIGKILL)  # no clean shutdown: as if its machine died
        stack.hub.process.wait()
        stack.hub.start()
        finals = [launch.result(timeout=600)[-1] for launch in launches]

    for final in finals:
        assert final["phase"] == "ready" or (final["phase"] == "failed" and "Try again" in final["message"]), final
    delivered = [final for final in finals if final["phase"] == "ready"] + [before]
    # The hub keeps exactly the delivered sessions: failed launches are removed once it is back...
    wait_for(
        lambda: (
            sorted(u.name for u in users_of(stack, name))
            == sorted(f["url"].rstrip("/").rsplit("/", 1)[-1] for f in delivered)
        ),
        120,
        "the hub to hold exactly the delivered sessions",
    )
    assert all(complete(user) for user in users_of(stack, name))
    # ...every delivered session works, the one from before the kill included...
    assert all(server_answers(ready) for ready in delivered)
    # ...no server process of this test's launches runs that the hub does not know (deployments of other
    # tests in this session, with hubs of their own, run servers too: theirs are not this test's to judge)...
    known = {user.name for user in users_of(stack, name) if user.servers}

    def ours() -> set[str]:
        return {user for user in singleuser_processes().values() if user.startswith(f"{name}-")}

    wait_for(lambda: ours() <= known, 60, "server processes of dropped spawns to end")
    # ...and launching works again without anyone restarting anything.
    after = read_events(base_url, path)[-1]
    assert after["phase"] == "ready", after
    for user in users_of(stack, name):
        httpx.delete(
            stack.config.hub_url + f"hub/api/users/{user.name}/server",
            headers={"Authorization": f"token {stack.config.hub_api_token.get_secret_value()}"},
            timeout=30,
        )


def ingress_replicas() -> list[dict]:
    """The replicas of the stack's application ("binder"; other tests may deploy apps of their own)."""
    return [
        actor
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith("SERVE_REPLICA::binder#BinderIngress")
    ]


def test_serve_replica_killed_during_launches(base_url, git_server, stack, actors):
    """Clients reconnect as EventSource does; the launch id they carry reaches the same session."""
    name = "replica-killed"
    git_server.add(name, REQUIREMENTS_REPO)
    url = f"{base_url}build/git/{git_spec(git_server.url(name), 'main')}"
    assert follow_as_eventsource(url)[0][-1]["phase"] == "ready"  # built; its session is stopped below
    replicas = ingress_replicas()
    assert replicas, "the stack's ingress replica is not found"

    with ThreadPoolExecutor(LAUNCHES) as pool:
        launches = [pool.submit(follow_as_eventsource, url) for _ in range(LAUNCHES)]
        wait_for(lambda: len(users_of(stack, name)) > 2, 120, "launches to reach the hub")
        for replica in replicas:
            ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
        results = [launch.result(timeout=600) for launch in launches]

    killed = {replica["name"] for replica in replicas}
    wait_for(lambda: {r["name"] for r in ingress_replicas()} - killed, 60, "a new replica")
    finals = [events[-1] for events, _ in results]
    assert [final["phase"] for final in finals] == ["ready"] * LAUNCHES, finals
    assert max(connections for _, connections in results) > 1, "the kill dropped no connection: the test did nothing"
    urls = {final["url"] for final in finals}
    assert len(urls) == LAUNCHES, "each click got its own session, none got two"
    # Exactly the delivered sessions (and the first one) run: a launch whose replica died was not
    # started twice and left nothing behind.
    wait_for(lambda: len(users_of(stack, name)) == LAUNCHES + 1, 120, "no session beyond the delivered ones")
    assert all(complete(user) for user in users_of(stack, name))
    assert all(server_answers(final) for final in finals)
    for user in users_of(stack, name):
        ray.get(actors.session_manager.stop.remote(user.name))


def test_a_build_step_killed_mid_build_fails_clearly_and_the_next_click_builds(base_url, git_server, stack, tmp_path):
    name = "step-killed"
    flag = tmp_path / "killed-once"
    # postBuild hangs the first time only (until the test kills it), then finishes at once.
    git_server.add(
        name,
        {
            **REQUIREMENTS_REPO,
            "postBuild": f"#!/bin/bash\nif [ ! -e {flag} ]; then touch {flag}; exec sleep 600; fi\n",
        },
    )
    path = f"build/git/{git_spec(git_server.url(name), 'main')}"
    with ThreadPoolExecutor(1) as pool:
        launch = pool.submit(read_events, base_url, path)
        wait_for(flag.exists, 300, "postBuild to start")

        def hanging_step() -> int | None:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        if (entry / "cmdline").read_bytes() == b"sleep\x00600\x00":
                            return int(entry.name)
                    except OSError:
                        continue
            return None

        os.kill(wait_for(hanging_step, 60, "the build step's process"), signal.SIGKILL)
        events = launch.result(timeout=300)

    final = events[-1]
    assert final["phase"] == "failed", final
    assert "postBuild" in final["message"], final["message"]
    images = [d for d in stack.config.images_dir.iterdir() if name in d.name]
    assert all((d / MARKER).exists() for d in images), "no half-built image is kept"
    # The failure is not remembered as the repository's fate: the next click builds and launches.
    assert read_events(base_url, path)[-1]["phase"] == "ready"


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk that can be filled without filling the machine's."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (CI runs as root and can): {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(path: Path) -> None:
    """Write zeros to `path` until the disk under it is full."""
    chunk = bytes(2**20)
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    assert shutil.disk_usage(path.parent).free < 2**20


def test_a_full_data_dir_fails_builds_clearly_and_they_work_again_once_space_is_freed(
    small_disk, stack, git_server, actors
):
    name = "disk-full"
    git_server.add(name, REQUIREMENTS_REPO)
    (stack.config.data_dir / "stacks").mkdir(exist_ok=True)  # made by the first build, if this is not the first
    (small_disk / "stacks").symlink_to(stack.config.data_dir / "stacks")  # the shared server stack
    config = stack.config.model_copy(update={"data_dir": small_disk})
    scheduler = ray.remote(BuildScheduler).options(num_cpus=0).remote(config)
    try:
        spec = git_spec(git_server.url(name), "main")
        resolved = ray.get(actors.ref_resolver.resolve.remote(ResolveRequest(provider="git", spec=spec)))
        request = BuildRequest.for_ref(resolved)

        async def build() -> list:
            return [await ref async for ref in scheduler.build.remote(request)]

        fill(small_disk / "filler")
        final = asyncio.run(build())[-1]
        assert final.phase == "failed", final
        assert "out of disk space" in final.message and str(small_disk) in final.message, final.message
        assert not list(small_disk.glob("images/*")), "nothing half-built is kept"
        assert not list(small_disk.glob("builds/*.json")), "no build lock is left"

        (small_disk / "filler").unlink()  # the fault goes; nobody restarts anything
        final = asyncio.run(build())[-1]
        assert final.phase == "built", final
    finally:
        ray.kill(scheduler)
