"""An installed wheel carries the embedded hub's config: `make serve` does not need a source checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from binder_actors.config import PROJECT_DIR

UV = Path(sys.executable).parent / "uv"
HUB_CONFIG_IN_WHEEL = "binder_actors/hub_config/jupyterhub_config.py"


def test_the_wheel_ships_the_embedded_hub_config_where_binder_config_finds_it(tmp_path: Path) -> None:
    # Built from a copy, so the build leaves nothing in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_DIR / name, source / name)
    for package in ("binder_actors", "serve_app"):
        shutil.copytree(PROJECT_DIR / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [str(UV), "build", "--wheel", "--quiet", "-o", str(tmp_path / "dist"), str(source)], check=True, timeout=120
    )
    (wheel,) = (tmp_path / "dist").glob("binder_actors-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert HUB_CONFIG_IN_WHEEL in archive.namelist()
        archive.extractall(tmp_path / "site")

    # The installed package, away from the checkout, locates the file it shipped with.
    probe = "from binder_actors.config import EMBEDDED_HUB_CONFIG as path; print(path if path.is_file() else '')"
    found = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert found == str(tmp_path / "site" / HUB_CONFIG_IN_WHEEL)
