"""A conda channel made offline (py-rattler-build's assemble_package, rattler's index) and served over HTTP
on 127.0.0.1 as conda-forge is served, so conda builds are tested without the internet.

Its `python` is this machine's pyenv CPython 3.10 packaged as conda-forge packages it: the interpreter,
its shared libpython (found beside it through $ORIGIN, as conda's are) and the standard library.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import rattler_build
from rattler.index import index_fs

from serve_app.embedded import free_port
from tests.helpers import wait_for

PYTHON_VERSION = "3.10"
# A repository of the channel's packages with a pip section (name: ignored, as repo2docker ignores it).
CONDA_REPO = {
    "binder/environment.yml": """\
name: ignored-by-binder
channels:
  - conda-forge
dependencies:
  - python=3.10
  - condalib
  - conda-hello
  - pip:
    - -r requirements-pip.txt
""",
    "binder/requirements-pip.txt": "tabulate==0.9.0\n",
}
# What a CPython package leaves out: tests, GUI, and the host's own installed packages.
_STDLIB_SKIPPED = {"test", "site-packages", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}


def host_python_home(version: str = PYTHON_VERSION) -> Path | None:
    """The newest pyenv CPython `version` of this machine (a shared-libpython build), if any."""
    found = sorted((Path.home() / ".pyenv" / "versions").glob(f"{version}.*"))
    return found[-1] if found and (found[-1] / "bin" / f"python{version}").is_file() else None


def _stage_python(home: Path, version: str, stage: Path) -> None:
    """The files of a conda `python` package from the CPython installed at `home`."""
    (stage / "bin").mkdir(parents=True)
    shutil.copytree(
        home / "lib",
        stage / "lib",
        ignore=lambda _, names: [
            n for n in names if n in _STDLIB_SKIPPED or n.endswith(".a") or n.startswith("config-")
        ],
    )
    (stage / "lib" / f"python{version}" / "site-packages").mkdir()
    # pyenv links libpython by an absolute RUNPATH; conda's is relative to the binary: rewrite it in
    # place (same length, NUL-padded), as conda rewrites prefixes in binaries.
    binary = (home / "bin" / f"python{version}").read_bytes()
    old = str(home / "lib").encode() + b"\0"
    new = b"$ORIGIN/../lib\0"
    assert binary.count(old) == 1, f"no RUNPATH {old!r} in {home}'s python"
    target = stage / "bin" / f"python{version}"
    target.write_bytes(binary.replace(old, new + b"\0" * (len(old) - len(new))))
    target.chmod(0o755)
    for alias in ("python3", "python"):
        (stage / "bin" / alias).symlink_to(f"python{version}")


def build_channel(root: Path, python_home: Path) -> Path:
    """root/conda-forge with python, a noarch library, a binary on PATH and a package nobody can install."""
    channel = root / "conda-forge"
    staging = root / "staging"
    for subdir in ("noarch", "linux-64"):
        (channel / subdir).mkdir(parents=True)

    def package(name: str, subdir: str, files: dict[str, str], **metadata: object) -> None:
        folder = staging / name
        for path, content in files.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(content)
            if path.startswith("bin/"):
                (folder / path).chmod(0o755)
        folder.mkdir(parents=True, exist_ok=True)
        rattler_build.assemble_package(
            name, "1.0", subdir, "0", channel / subdir, files_dir=folder, compression_level=1, **metadata
        )

    package(
        "condalib",
        "noarch",
        {"site-packages/condalib/__init__.py": "ANSWER = 42\n"},
        noarch="python",
        depends=["python >=3.8"],
    )
    package("conda-hello", "linux-64", {"bin/conda-hello": "#!/bin/sh\necho hello from a conda package\n"})
    package(
        "broken-dep",
        "noarch",
        {"share/broken-dep/README": "needs what no channel has\n"},
        noarch="generic",
        depends=["no-such-package >=1"],
    )
    _stage_python(python_home, PYTHON_VERSION, staging / "python")
    rattler_build.assemble_package(
        "python",
        f"{PYTHON_VERSION}.99",
        "linux-64",
        "h0_host",
        channel / "linux-64",
        files_dir=staging / "python",
        compression_level=1,
        detect_prefix=False,
    )
    shutil.rmtree(staging)
    # Plain repodata.json, as most mirrors serve: rattler 0.28 fails on a 304 answer to its sharded index.
    asyncio.run(index_fs(channel, write_shards=False))
    return channel


class ChannelServer:
    """`python -m http.server` over the channel's root in a process of its own (stop it to make it unreachable)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _answers(self.url + "conda-forge/noarch/repodata.json"), 30, "the conda channel to serve")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
