"""The kernel environment of an old Python: which tool makes and fills it, its kernel's name, its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from binder_actors.builders.detect import UnsupportedRepository, plan_build
from binder_actors.builders.kernel_env import KernelEnvironment, interpreter, kernel_name

UV = ["uv"]


@pytest.mark.parametrize(
    ("python", "creates_with", "installs_with"),
    [
        ("2.7", ["uv", "tool", "run"], ["/img/kernel/bin/python", "-m", "pip", "install"]),
        ("3.5", ["uv", "tool", "run"], ["/img/kernel/bin/python", "-m", "pip", "install"]),
        ("3.6", ["uv", "venv"], ["uv", "pip", "install", "--python", "/img/kernel/bin/python"]),
    ],
)
def test_uv_makes_what_it_can_and_virtualenv_with_pip_the_rest(python, creates_with, installs_with):
    kernel = KernelEnvironment(Path("/img"), python, Path(f"/py/bin/python{python}"), UV)
    create = kernel.create_command()
    assert create[: len(creates_with)] == creates_with
    assert create[-1] == "/img/kernel" and f"/py/bin/python{python}" in create
    if creates_with[1] == "tool":
        assert "virtualenv<20.22" in create  # the last virtualenv that makes Python 2 environments
    assert kernel.install_command()[: len(installs_with)] == installs_with


@pytest.mark.parametrize(("python", "name"), [("2.7", "python2"), ("3.6", "python3"), ("3.4", "python3")])
def test_the_kernel_takes_ipykernels_own_name_and_says_its_python(python, name):
    kernel = KernelEnvironment(Path("/img"), python, Path("/py"), UV)
    register = kernel.register_command()
    assert kernel_name(python) == name
    assert register[:6] == ["/img/kernel/bin/python", "-m", "ipykernel", "install", "--prefix", "/img/kernel"]
    assert register[6:] == ["--name", name, "--display-name", f"Python {python}"]


def test_the_kernel_becomes_the_servers_default(tmp_path):
    KernelEnvironment(tmp_path, "2.7", Path("/py"), UV).make_default_kernel(tmp_path / "env")
    config = (tmp_path / "env" / "etc" / "jupyter" / "jupyter_server_config.json").read_text()
    assert '"default_kernel_name": "python2"' in config


@pytest.mark.parametrize(
    ("files", "found", "refusal"),
    [
        ({"runtime.txt": "python-3.10"}, None, None),  # no kernel environment: nothing to find
        ({"runtime.txt": "python-2.7"}, "/py/python2.7", None),
        ({"runtime.txt": "python-2.7"}, None, "this machine has no python2.7: install it with pyenv"),
        (
            {"environment.yml": "dependencies:\n  - python=2.7\n  - numpy\n"},
            "/py/python2.7",
            "environment.yml asks for Python 2.7 with conda packages",
        ),
    ],
)
def test_which_interpreter_and_what_is_refused(tmp_path, files, found, refusal):
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    plan = plan_build(tmp_path, "3.10", ("3.10",))
    if refusal:
        with pytest.raises(UnsupportedRepository, match=refusal):
            interpreter(plan, Path(found) if found else None)
    else:
        expected = Path(found) if found and plan.kernel_environment else None
        assert interpreter(plan, Path(found) if found else None) == expected
