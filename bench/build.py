"""Build speed of the local builder against `python -m venv && pip install -r`, in the same run.

A requirements.txt repository with numpy and pandas: a cold build (empty uv cache; the shared
Jupyter server stack already installed, as it is after the first build on a machine), the pip
baseline (no pip cache), and a warm rebuild of a new commit with the same requirements.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from binder_actors.builders.local import LocalBuildExecutor, find_python
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest
from binder_actors.providers import resolve_once
from binder_actors.registries.local import LocalImageStore
from tests.helpers import commit, make_repo

REQUIREMENTS = "numpy==2.2.6\npandas==2.2.3\n"


async def _quiet(event: BinderEvent) -> None:
    return None


def _build(executor: LocalBuildExecutor, repo: Path) -> float:
    resolved = asyncio.run(resolve_once("git", f"{quote(repo.as_uri(), safe='')}/main", executor.config))
    request = BuildRequest.for_ref(resolved)
    started = time.perf_counter()
    asyncio.run(executor.build(request, _quiet))
    return time.perf_counter() - started


def run() -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="binder-bench-build-"))
    config = BinderConfig(data_dir=work / "data", allow_local_repos=True)
    executor = LocalBuildExecutor(config, LocalImageStore(config.images_dir))
    make_repo(work, "warmup", {"requirements.txt": ""})
    _build(executor, work / "warmup")  # installs the shared server stack, with the usual uv cache

    make_repo(work, "numpy-pandas", {"requirements.txt": REQUIREMENTS})
    saved_cache = os.environ.get("UV_CACHE_DIR")
    os.environ["UV_CACHE_DIR"] = str(work / "uv-cache-cold")
    try:
        cold = _build(executor, work / "numpy-pandas")
        (work / "numpy-pandas" / "analysis.py").write_text("print('a new commit')\n")
        commit(work / "numpy-pandas", "a new commit, same requirements")
        warm = _build(executor, work / "numpy-pandas")
    finally:
        if saved_cache is None:
            os.environ.pop("UV_CACHE_DIR")
        else:
            os.environ["UV_CACHE_DIR"] = saved_cache

    python = str(find_python(config.python_version))
    (work / "requirements.txt").write_text(REQUIREMENTS)
    started = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(work / "pip-venv")], check=True)
    subprocess.run(
        [
            str(work / "pip-venv" / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-cache-dir",
            "-r",
            str(work / "requirements.txt"),
        ],
        check=True,
    )
    baseline = time.perf_counter() - started
    return {
        "requirements": REQUIREMENTS.split(),
        "cold_build_s": round(cold, 2),
        "pip_venv_baseline_s": round(baseline, 2),
        "cold_speedup_vs_pip": round(baseline / cold, 2),
        "warm_rebuild_new_commit_s": round(warm, 2),
    }
