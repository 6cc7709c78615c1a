"""KubeBinderSpawner under a real JupyterHub, against the Kubernetes API emulator.

The hub runs with the embedded config's Kubernetes spawner (`BINDER_BUILDER=kubernetes`) and a
kubeconfig that points at the emulator; kubespawner's reflectors list and watch its pods and events with
kubernetes_asyncio. A kubelet stand-in runs each session pod's container as a local
`jupyterhub-singleuser` on 127.0.0.1, so a launch through the hub's REST API goes all the way to a
server that answers with the session's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kubernetes_validate
import pytest

from binder_actors.config import EMBEDDED_HUB_CONFIG, BinderConfig
from binder_actors.hub import HubClient, HubError
from serve_app.embedded import free_port, hub_environment
from tests.helpers import wait_for
from tests.kube_emulator import KubeEmulator
from tests.kubelet import ProcessKubelet

T = TypeVar("T")
NS = "binder-sessions"
SESSION_SELECTOR = "component=singleuser-server"
KUBERNETES_VERSION = "1.33.0"  # as tests/unit/test_manifests.py
DEADLINE = 60.0
IMAGE = "registry.example.org/binder/binder-2dexamples-2drequirements-abc123:0123456789abcdef"
# As cluster/jupyterhub/values.yaml's singleuser section sets them through the chart.
RESOURCES = {"mem_limit": "2G", "mem_guarantee": "1G", "cpu_limit": "1", "cpu_guarantee": "0.1"}


@dataclass
class KubeHub:
    url: str
    token: str
    server_port: int
    emulator: KubeEmulator
    kubelet: ProcessKubelet
    log_path: Path

    def session_pods(self) -> list[dict[str, Any]]:
        with self.emulator.changed:
            return [
                pod
                for pod in self.emulator.pods.values()
                if pod["metadata"].get("labels", {}).get("component") == "singleuser-server"
            ]

    def hub_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 2 * DEADLINE))


@pytest.fixture(scope="module")
def kube_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeHub]:
    root = tmp_path_factory.mktemp("kube-hub")
    (root / "hub").mkdir()
    venv_bin = str(Path(sys.executable).parent)
    with (
        KubeEmulator() as emulator,
        ProcessKubelet(emulator, root / "pods", f"{venv_bin}:/usr/bin:/bin", SESSION_SELECTOR) as kubelet,
    ):
        port, server_port, token = free_port(), free_port(), secrets.token_hex(32)
        config = BinderConfig(data_dir=root, builder="kubernetes", kube_namespace=NS)
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("KUBERNETES_")},
            **hub_environment(config, port, token),
            "KUBECONFIG": str(emulator.write_kubeconfig(root / "kubeconfig", NS)),
        }
        # Per-test settings the chart would give: the server port (pods share 127.0.0.1 here) and resources.
        overrides = [f"--KubeBinderSpawner.port={server_port}"]
        overrides += [f"--KubeBinderSpawner.{name}={value}" for name, value in RESOURCES.items()]
        log_path = root / "hub" / "jupyterhub.log"
        with open(log_path, "wb") as hub_log:
            process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(EMBEDDED_HUB_CONFIG), *overrides],
                cwd=root / "hub",
                env=env,
                stdout=hub_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}/"
        hub = KubeHub(url, token, server_port, emulator, kubelet, log_path)

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"JupyterHub exited at start:\n{hub.hub_log()}")
            try:
                return httpx.get(url + "hub/api/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(answers, DEADLINE, "JupyterHub to answer")
            yield hub
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def binder_options(token: str) -> dict[str, str]:
    """The user_options SessionManager sends (binder_actors/actors/session_manager.py)."""
    return {
        "image": IMAGE,
        "token": token,
        "repo_url": "https://github.com/binder-examples/requirements",
        "binder_ref_url": "https://github.com/binder-examples/requirements/tree/0123456789abcdef",
        "binder_launch_host": "https://binder.example.org/",
        "binder_request": "v2/gh/binder-examples/requirements/HEAD",
        "binder_persistent_request": "v2/gh/binder-examples/requirements/0123456789abcdef",
    }


def test_launch_runs_the_binder_image_in_a_pod_that_serves_with_the_token_and_stop_deletes_it(
    kube_hub: KubeHub,
) -> None:
    user = "requirements-k8s0pod1"

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as stack:
            hub = HubClient(kube_hub.url, kube_hub.token)
            stack.push_async_callback(hub.aclose)
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            await hub.create_user(user)
            stack.push_async_callback(hub.delete_user, user)
            stack.push_async_callback(hub.stop_server, user)  # first, when the test fails half-way
            token = await hub.create_token(user, note="binder session", scopes=[f"access:servers!user={user}"])
            kube_hub.kubelet.admit.clear()  # the pod stays Pending until its scheduling is seen as progress
            stack.callback(kube_hub.kubelet.admit.set)
            # The hub answers the start once the spawn is done or slow: follow it meanwhile.
            starting = asyncio.create_task(hub.start_server(user, "", binder_options(token)))
            await asyncio.to_thread(kube_hub.emulator.wait_for, lambda: bool(kube_hub.session_pods()), DEADLINE)
            progress = []
            async for event in hub.progress(user):
                progress.append(event.message)
                if "Successfully assigned" in progress[-1]:
                    kube_hub.kubelet.admit.set()
            await starting
            assert event.ready, (progress, kube_hub.hub_log())
            # kubespawner's event reflector relayed the emulator's pod events as spawn progress.
            assert any(f"Successfully assigned {NS}/" in message for message in progress), progress
            assert any("Started container notebook" in message for message in progress), progress

            (pod,) = kube_hub.session_pods()
            name = pod["metadata"]["name"]
            created = next(body for body in kube_hub.emulator.created if body["metadata"]["name"] == name)
            check_session_pod(created, user, kube_hub.server_port)
            kubernetes_validate.validate(created, KUBERNETES_VERSION, strict=True)

            model = await hub.get_user(user)
            assert model is not None
            server_url = kube_hub.url.rstrip("/") + model.servers[""].url
            status = await http.get(server_url + "api/status", headers={"Authorization": f"token {token}"})
            assert status.status_code == 200, status.text
            assert kube_hub.kubelet.running() == [name]
            denied = await http.get(server_url + "api/status", headers={"Authorization": "token not-the-token"})
            assert denied.status_code in (401, 403)

            await hub.stop_server(user)
            await asyncio.to_thread(kube_hub.emulator.wait_for, lambda: not kube_hub.session_pods(), DEADLINE)
            await until(lambda: kube_hub.kubelet.running() == [], "the server process to end with its pod")

            async def forgotten() -> bool:
                model = await hub.get_user(user)
                return model is None or not model.servers

            await until_async(forgotten, "the hub to forget the server")
            gone = await http.get(server_url + "api/status", headers={"Authorization": f"token {token}"})
            assert gone.status_code != 200

    run(scenario)


async def until(condition: Callable[[], bool], what: str) -> None:
    await asyncio.to_thread(wait_for, condition, DEADLINE, what)


async def until_async(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll an async `condition` until it holds; fail with `what` at the deadline."""

    async def holds() -> None:
        while not await condition():
            await asyncio.sleep(0.2)

    try:
        await asyncio.wait_for(holds(), DEADLINE)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}") from None


def check_session_pod(pod: dict[str, Any], user: str, port: int) -> None:
    """The pod KubeBinderSpawner asked for: the Binder image, the Binder env and culling, labels, resources."""
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "notebook"
    assert container["image"] == IMAGE
    assert container["ports"] == [{"name": "notebook-port", "containerPort": port}]
    env = {var["name"]: var.get("value") for var in container["env"]}
    options = binder_options("")
    assert env["BINDER_REPO_URL"] == options["repo_url"]
    assert env["BINDER_REF_URL"] == options["binder_ref_url"]
    assert env["BINDER_LAUNCH_HOST"] == options["binder_launch_host"]
    assert env["BINDER_REQUEST"] == options["binder_request"]
    assert env["BINDER_PERSISTENT_REQUEST"] == options["binder_persistent_request"]
    assert env["JUPYTERHUB_ALLOW_TOKEN_IN_URL"] == "1"
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/lab"
    assert env["JUPYTERHUB_USER"] == user
    assert "PATH" not in env  # the host's PATH is not the image's
    assert container["args"][0] == "jupyterhub-singleuser"
    assert {
        "--ServerApp.shutdown_no_activity_timeout=600",
        "--MappingKernelManager.cull_idle_timeout=600",
        "--MappingKernelManager.cull_interval=60",
        "--MappingKernelManager.cull_connected=True",
    } <= set(container["args"])
    labels = pod["metadata"]["labels"]
    assert labels["component"] == "singleuser-server"
    assert labels["hub.jupyter.org/username"] == user
    # JupyterHub reads "2G" as 2 GiB and kubespawner sends the byte counts.
    assert container["resources"] == {
        "limits": {"memory": 2 * 2**30, "cpu": 1.0},
        "requests": {"memory": 2**30, "cpu": 0.1},
    }


def test_launch_without_an_image_is_refused_before_any_pod_is_made(kube_hub: KubeHub) -> None:
    user = "requirements-k8s0nimg"
    options = {key: value for key, value in binder_options("a-token").items() if key != "image"}
    posts_before = len(kube_hub.emulator.created)

    async def scenario() -> str:
        hub = HubClient(kube_hub.url, kube_hub.token)
        try:
            await hub.create_user(user)
            try:
                await hub.start_server(user, "", options)
            except HubError as error:
                return str(error)
            return " ".join(event.message async for event in hub.progress(user))
        finally:
            await hub.delete_user(user)
            await hub.aclose()

    refused = run(scenario)
    assert "user_options must include image" in refused
    assert len(kube_hub.emulator.created) == posts_before
