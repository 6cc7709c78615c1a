"""Conda environments with py-rattler against uv, for the same packages from the same local files.

The wheels of numpy and pandas (and what they need) are downloaded once from PyPI, then served two
ways on 127.0.0.1: as a conda channel (each wheel unpacked into a conda package, beside this machine's
CPython 3.10 packaged as `python`, as tests/conda_channel.py builds it) and as a find-links index for
uv. Measured in one run: rattler's solve and install into a new prefix with an empty package cache
(cold) and with a full one (warm), uv's install of the same wheels cold and warm, and the local
builder's whole build of an environment.yml repository cold and as a new commit (warm).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import rattler_build
from rattler.index import index_fs

from binder_actors.builders.conda import install_environment
from binder_actors.builders.detect import CondaEnvironment
from binder_actors.builders.local import LocalBuildExecutor, find_python
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest
from binder_actors.providers import resolve_once
from binder_actors.registries.local import LocalImageStore
from tests.conda_channel import PYTHON_VERSION, ChannelServer, build_channel, host_python_home
from tests.helpers import commit, make_repo

REQUIREMENTS = ("numpy==2.2.6", "pandas==2.2.3")
_WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


async def _quiet(event: BinderEvent) -> None:
    return None


def _download_wheels(python: Path, into: Path) -> list[Path]:
    into.mkdir(parents=True)
    subprocess.run(
        [str(python), "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(into), *REQUIREMENTS],
        check=True,
    )
    return sorted(into.glob("*.whl"))


def _conda_name(wheel: Path) -> tuple[str, str]:
    match = _WHEEL_RE.match(wheel.name)
    assert match, wheel.name
    return match["name"].lower().replace("_", "-"), match["version"]


def _add_wheels_to_channel(channel: Path, wheels: list[Path], staging: Path) -> list[str]:
    """Each wheel as a linux-64 conda package of its files in site-packages; the specs that name them."""
    specs = []
    for wheel in wheels:
        name, version = _conda_name(wheel)
        files = staging / name / "lib" / f"python{PYTHON_VERSION}" / "site-packages"
        files.mkdir(parents=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(files)
        rattler_build.assemble_package(
            name,
            version,
            "linux-64",
            "py310_0",
            channel / "linux-64",
            files_dir=staging / name,
            compression_level=1,
            depends=[f"python {PYTHON_VERSION}.*"],
        )
        specs.append(f"{name}=={version}")
    shutil.rmtree(staging)
    asyncio.run(index_fs(channel, write_shards=False))
    return specs


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _build(executor: LocalBuildExecutor, repo: Path) -> float:
    resolved = asyncio.run(resolve_once("git", f"{quote(repo.as_uri(), safe='')}/main", executor.config))
    return _timed(lambda: asyncio.run(executor.build(BuildRequest.for_ref(resolved), _quiet)))


def _uv_install(python: Path, venv: Path, cache: Path, find_links: str, packages: list[str]) -> float:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = {**os.environ, "UV_CACHE_DIR": str(cache)}
    subprocess.run([uv, "venv", "--quiet", "--python", str(python), str(venv)], check=True, env=env)
    install = [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--no-index"]
    return _timed(lambda: subprocess.run([*install, "--find-links", find_links, *packages], check=True, env=env))


def run() -> dict[str, object]:
    home = host_python_home()
    python = find_python(PYTHON_VERSION)
    if home is None or python is None:
        return {"skipped": f"needs this machine's pyenv CPython {PYTHON_VERSION}"}
    work = Path(tempfile.mkdtemp(prefix="binder-bench-conda-"))
    root = work / "served"
    channel = build_channel(root, home)
    wheels = _download_wheels(python, root / "wheels")
    specs = _add_wheels_to_channel(channel, wheels, work / "staging")
    server = ChannelServer(root)
    try:
        config = BinderConfig(data_dir=work / "data", allow_local_repos=True, conda_channel_alias=server.url)
        environment = CondaEnvironment("environment.yml", ("conda-forge",), (f"python {PYTHON_VERSION}.*", *specs))
        cache = work / "rattler-cache"

        def install(prefix: str) -> float:
            return _timed(
                lambda: asyncio.run(install_environment(environment, work / prefix, config.conda, cache, _quiet))
            )

        rattler_cold, rattler_warm = install("prefix-cold"), install("prefix-warm")
        wheel_names = [_conda_name(w)[0] for w in wheels]
        find_links = server.url + "wheels/"
        uv_cold = _uv_install(python, work / "uv-cold", work / "uv-cache", find_links, wheel_names)
        uv_warm = _uv_install(python, work / "uv-warm", work / "uv-cache", find_links, wheel_names)

        executor = LocalBuildExecutor(config, LocalImageStore(config.images_dir))
        make_repo(work, "warmup", {"requirements.txt": ""})
        _build(executor, work / "warmup")  # the shared server stack, installed once per machine
        dependencies = "".join(f"  - {spec}\n" for spec in [f"python={PYTHON_VERSION}", *specs])
        make_repo(work, "conda-repo", {"environment.yml": f"dependencies:\n{dependencies}"})
        build_cold = _build(executor, work / "conda-repo")
        (work / "conda-repo" / "analysis.py").write_text("print('a new commit')\n")
        commit(work / "conda-repo", "a new commit, same environment")
        build_warm = _build(executor, work / "conda-repo")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "packages": specs,
        "note": "the same wheels as conda packages (one each, depending on python only) and as a uv find-links index",
        "rattler_install_cold_s": round(rattler_cold, 2),
        "rattler_install_warm_s": round(rattler_warm, 2),
        "uv_install_cold_s": round(uv_cold, 2),
        "uv_install_warm_s": round(uv_warm, 2),
        "local_build_conda_cold_s": round(build_cold, 2),
        "local_build_conda_warm_rebuild_s": round(build_warm, 2),
        "target_warm_rebuild_s": 3.0,
    }
