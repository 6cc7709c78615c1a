"""environment.yml repositories with conda packages, built by the local builder with py-rattler from a
channel served on 127.0.0.1 (tests/conda_channel.py), and checked from inside with `binder-actors exec`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conda_channel import CONDA_REPO, ChannelServer
from tests.conftest import REQUIREMENTS_REPO
from tests.helpers import git_spec, make_repo, read_events, run_in_kernel

KERNEL_CHECK = """
from jupyter_client.manager import start_new_kernel
manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
try:
    code = "import condalib, tabulate, sys; print('kernel:', condalib.ANSWER, tabulate.__version__, "
    client.execute_interactive(code + "sys.prefix.endswith('/env'))", timeout=60)
finally:
    client.stop_channels()
    manager.shutdown_kernel(now=True)
"""


@pytest.fixture
def channel(conda_channel: ChannelServer | None) -> ChannelServer:
    if conda_channel is None:
        pytest.skip("no pyenv CPython 3.10 on this machine to make the channel's python package from")
    return conda_channel


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conda-data")


def cli(data_dir: Path, channel_alias: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "binder_actors.cli", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "BINDER_DATA_DIR": str(data_dir), "BINDER_CONDA_CHANNEL_ALIAS": channel_alias},
    )


def leftovers(data_dir: Path, name: str) -> list[Path]:
    images = data_dir / "images"
    locks = data_dir / "builds"
    return [p for folder in (images, locks) if folder.is_dir() for p in folder.iterdir() if name in p.name]


def test_conda_packages_and_the_pip_section_install_into_the_environments_python(channel, data_dir, tmp_path):
    make_repo(tmp_path, "conda-env", CONDA_REPO)
    built = cli(data_dir, channel.url, "build", str(tmp_path / "conda-env"))
    assert built.returncode == 0, built.stderr[-3000:]
    assert "Solving the conda packages of binder/environment.yml" in built.stderr
    assert "Downloading condalib" in built.stderr
    image = built.stdout.strip()
    check = (
        "import sys, condalib, tabulate, jupyter_server, ipykernel; "
        "print(sys.prefix.endswith('/env'), condalib.ANSWER, tabulate.__version__, '%d.%d' % sys.version_info[:2])"
    )
    ran = cli(data_dir, channel.url, "exec", image, "--", "python", "-c", check)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() == "True 42 0.9.0 3.10"
    # A notebook's kernel, started as the server starts it, runs in the environment and imports both.
    ran = cli(data_dir, channel.url, "exec", image, "--", "python", "-c", KERNEL_CHECK)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip().endswith("kernel: 42 0.9.0 True"), ran.stdout[-2000:]
    hello = cli(data_dir, channel.url, "exec", image, "--", "conda-hello")
    assert hello.stdout.strip() == "hello from a conda package", hello.stderr[-2000:]

    # The same packages in another repository: linked from the shared package cache, nothing downloaded.
    make_repo(tmp_path, "conda-env-again", {**CONDA_REPO, "README.md": "another repository\n"})
    again = cli(data_dir, channel.url, "build", str(tmp_path / "conda-env-again"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Downloading" not in again.stderr
    assert "Installed 3 conda packages (3 from the cache" in again.stderr


def test_an_unsolvable_spec_fails_with_the_solvers_explanation_and_leaves_nothing(channel, data_dir, tmp_path):
    make_repo(tmp_path, "conda-unsolvable", {"environment.yml": "dependencies:\n  - python=3.10\n  - broken-dep\n"})
    built = cli(data_dir, channel.url, "build", str(tmp_path / "conda-unsolvable"))
    assert built.returncode == 1
    assert "The conda packages of environment.yml cannot be installed together" in built.stderr
    assert "no-such-package" in built.stderr
    assert not leftovers(data_dir, "conda-unsolvable")


def test_a_stopped_channel_fails_naming_its_url_and_leaves_nothing(channel, data_dir, tmp_path):
    stopped = ChannelServer(channel.root)
    stopped.stop()
    make_repo(tmp_path, "conda-offline", {"environment.yml": "dependencies:\n  - python=3.10\n  - condalib\n"})
    built = cli(data_dir, stopped.url, "build", str(tmp_path / "conda-offline"))
    assert built.returncode == 1
    assert f"could not be read ({stopped.url}conda-forge/)" in built.stderr, built.stderr[-2000:]
    assert not leftovers(data_dir, "conda-offline")


def test_a_conda_repository_launches_through_the_hub_and_its_kernel_imports_both_kinds(base_url, git_server, channel):
    git_server.add("conda-launch", {**CONDA_REPO, "index.ipynb": REQUIREMENTS_REPO["index.ipynb"]})
    events = read_events(base_url, f"build/git/{git_spec(git_server.url('conda-launch'), 'main')}")
    assert events[-1]["phase"] == "ready", events[-1]
    assert any("Installing 3 conda packages" in e.get("message", "") for e in events)
    ready = events[-1]
    output = run_in_kernel(
        ready["url"],
        ready["token"],
        "import condalib, tabulate, sys; print(condalib.ANSWER, tabulate.__version__, sys.prefix.endswith('/env'))",
    )
    assert output.strip() == "42 0.9.0 True"


def test_a_python_this_machine_lacks_fails_naming_the_environment_file(channel, data_dir, tmp_path):
    make_repo(tmp_path, "conda-no-python", {"environment.yml": "dependencies:\n  - python=3.99\n  - condalib\n"})
    built = cli(data_dir, channel.url, "build", str(tmp_path / "conda-no-python"))
    assert built.returncode == 1
    assert "Python 3.99 is not installed on this machine" in built.stderr
    assert "another version in environment.yml" in built.stderr
    assert not leftovers(data_dir, "conda-no-python")
