"""runtime.txt's old Pythons (2.7, 3.6) on the local builder, as repo2docker runs them: the server on the
default Python, the notebook's kernel in an environment of the old Python with the repository's packages.

Launched over HTTP through the real hub, and checked from inside that kernel.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import git_spec, read_events, run_in_kernel

# Runs on Python 2.7 as on 3.x: the kernel's Python and tabulate, then those of `python` on PATH (the server's).
KERNEL_CODE = """
import subprocess, sys, tabulate
VERSIONS = "import sys, tabulate; print('%d.%d %s' % (sys.version_info[0], sys.version_info[1], tabulate.__version__))"
exec(VERSIONS)
print(subprocess.check_output(["python", "-c", VERSIONS]).decode())
"""


@pytest.mark.parametrize(("python", "kernel"), [("2.7", "python2"), ("3.6", "python3")])
def test_an_old_python_runs_the_default_kernel_with_the_requirements_beside_the_default_server(
    base_url, git_server, stack, python, kernel
):
    name = f"old-python-{python}"
    files = {
        "runtime.txt": f"python-{python}\n",
        "requirements.txt": "tabulate==0.8.10\n",  # the last tabulate for Python 2.7 and 3.6
        # repo2docker installs requirements3.txt into the server's environment when the kernel is elsewhere.
        "requirements3.txt": "tabulate==0.9.0\n",
    }
    git_server.add(name, files)
    events = read_events(base_url, f"build/git/{git_spec(git_server.url(name), 'main')}")
    ready = events[-1]
    assert ready["phase"] == "ready", events[-5:]
    assert any(f"Creating a Python {python} kernel environment" in e.get("message", "") for e in events)

    headers = {"Authorization": f"token {ready['token']}"}
    specs = httpx.get(ready["url"] + "api/kernelspecs", headers=headers, timeout=30).json()
    assert specs["default"] == kernel
    assert specs["kernelspecs"][kernel]["spec"]["display_name"] == f"Python {python}"

    output = run_in_kernel(ready["url"], ready["token"], KERNEL_CODE)
    assert output.split() == [python, "0.8.10", stack.config.python_version, "0.9.0"]


def test_an_old_python_this_machine_lacks_fails_naming_it_and_how_to_install_it(base_url, git_server):
    git_server.add("old-python-missing", {"runtime.txt": "python-3.4\n", "requirements.txt": "tabulate\n"})
    events = read_events(base_url, f"build/git/{git_spec(git_server.url('old-python-missing'), 'main')}")
    assert events[-1]["phase"] == "failed"
    message = events[-1]["message"]
    assert "this machine has no python3.4" in message, message
    assert "pyenv install 3.4" in message
