"""A kubelet stand-in for the Kubernetes API emulator: runs each pod's container as a local process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from tests.kube_api import matches
from tests.kube_emulator import KubeEmulator


class ProcessKubelet:
    """A kubelet stand-in: runs the container of each pod the selector picks as a local process.

    The pod's network is loopback: its podIP is 127.0.0.1 and an address of 0.0.0.0 in its
    environment or arguments is bound as 127.0.0.1. The container's image is not pulled: its
    command is looked up on `path` (a virtualenv's bin, say), run with the pod's env only, in a
    fresh working directory that is also its HOME. The pod is Running once the process has
    started, and Succeeded or Failed with its exit code when it ends; deleting the pod kills it.
    A pod is scheduled at once; its container starts once `admit` is set (it is, unless a test
    clears it to look at a pod still Pending).
    """

    def __init__(self, emulator: KubeEmulator, workdir: Path, path: str, selector: str = "") -> None:
        self.emulator = emulator
        self.workdir = workdir
        self.path = path
        self.selector = selector
        self.processes: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.commands: dict[tuple[str, str], list[str]] = {}
        self.admit = threading.Event()
        self.admit.set()
        self._lock = threading.Lock()

    def __enter__(self) -> ProcessKubelet:
        self.emulator.on_created.append(self._run)
        self.emulator.on_deleted.append(self._kill)
        return self

    def __exit__(self, *exc: object) -> None:
        self.admit.set()
        self.emulator.on_created.remove(self._run)
        self.emulator.on_deleted.remove(self._kill)
        with self._lock:
            keys = list(self.processes)
        for namespace, name in keys:
            self._stop((namespace, name))

    def log(self, name: str, namespace: str = "default") -> str:
        """What the pod's process wrote so far."""
        path = self.workdir / f"{namespace}-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if not matches(self.selector, meta.get("labels") or {}):
            return
        self.emulator.add_event(
            pod, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to emulator", "scheduler"
        )
        threading.Thread(target=self._admit_and_start, args=(pod,), name=f"kubelet-{meta['name']}", daemon=True).start()

    def _admit_and_start(self, pod: dict[str, Any]) -> None:
        self.admit.wait()
        try:
            self._start(pod)
        except Exception as error:  # noqa: BLE001 - the pod fails, saying why, as a kubelet's would
            self.emulator.add_event(pod, "Failed", f"Error: {error}")
            self.emulator.set_phase(pod["metadata"]["name"], "Failed", pod["metadata"]["namespace"], reason="Error")

    def _start(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        container = pod["spec"]["containers"][0]
        env = {"PATH": self.path, "LANG": "C.UTF-8"}
        for var in container.get("env") or []:
            if "value" not in var:
                raise ValueError(f"env {var['name']}: the kubelet stand-in resolves only plain values")
            env[var["name"]] = _loopback(var["value"])
        command = [_loopback(arg) for arg in (container.get("command") or []) + (container.get("args") or [])]
        if not command:
            raise ValueError("the container names no command, and the stand-in cannot run an image's own CMD")
        program = shutil.which(command[0], path=self.path)
        if program is None:
            raise FileNotFoundError(f"{command[0]} is not on the kubelet stand-in's path {self.path}")
        if os.geteuid() == 0 and Path(program).name == "jupyterhub-singleuser":
            command.append("--allow-root")  # what the image's non-root user makes unnecessary in a pod
        home = self.workdir / f"{meta['namespace']}-{meta['name']}"
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
        self.emulator.add_event(pod, "Pulled", f'Container image "{container["image"]}" already present on machine')
        with open(home.with_suffix(".log"), "wb") as log:
            process = subprocess.Popen(
                [program, *command[1:]],
                cwd=home,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with self._lock:
            self.processes[key] = process
            self.commands[key] = [program, *command[1:]]
        self.emulator.add_event(pod, "Started", f"Started container {container['name']}")
        self.emulator.set_phase(key[1], "Running", key[0], pod_ip="127.0.0.1")
        threading.Thread(target=self._reap, args=(key, process), name=f"kubelet-{key[1]}", daemon=True).start()

    def _reap(self, key: tuple[str, str], process: subprocess.Popen[bytes]) -> None:
        """When the process ends by itself, its pod ends with its exit code."""
        code = process.wait()
        with self.emulator.changed:
            alive = key in self.emulator.pods and self.processes.get(key) is process
        if alive:
            phase = "Succeeded" if code == 0 else "Failed"
            self.emulator.set_phase(key[1], phase, key[0], exit_code=code, pod_ip="127.0.0.1")

    def _kill(self, pod: dict[str, Any]) -> None:
        self._stop((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def _stop(self, key: tuple[str, str]) -> None:
        with self._lock:
            process = self.processes.pop(key, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def running(self) -> list[str]:
        """Names of the pods whose process is still running."""
        with self._lock:
            return sorted(name for (_, name), process in self.processes.items() if process.poll() is None)


def _loopback(value: str) -> str:
    """An address of 0.0.0.0 (all of the pod's interfaces) is, for a pod on loopback, 127.0.0.1."""
    return value.replace("0.0.0.0", "127.0.0.1")  # noqa: S104 - replacing it, not binding it
