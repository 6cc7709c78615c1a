"""The local builder honours repo2docker's files: a corpus built for real and checked from inside.

Builds go through `binder-actors build` and are checked with `binder-actors exec`, which run the
same executor and environment as the service; scheduling is tested on the BuildScheduler actor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_repo

CORPUS: dict[str, dict[str, str]] = {
    "requirements-local-refs": {
        "requirements.txt": "-r more-requirements.txt\n-e .\n",
        "more-requirements.txt": "tabulate==0.9.0\n",
        "setup.py": "from setuptools import setup\nsetup(name='corpus-pkg', py_modules=['corpus_mod'])\n",
        "corpus_mod.py": "ANSWER = 42\n",
    },
    "setup-py-not-editable": {
        "setup.py": "from setuptools import setup\nsetup(name='corpus-pkg2', py_modules=['corpus_mod2'])\n",
        "corpus_mod2.py": "ANSWER = 7\n",
    },
    "requires-python": {
        "pyproject.toml": "[project]\nname = 'rp'\nversion = '1'\nrequires-python = '>=3.11,<3.12'\n"
        "[build-system]\nrequires = ['setuptools']\nbuild-backend = 'setuptools.build_meta'\n"
        "[tool.setuptools]\npy-modules = ['rp_mod']\n",
        "rp_mod.py": "ANSWER = 11\n",
    },
    # No [build-system]: repo2docker does not install it (a pip install of this metadata would fail).
    "pyproject-without-build-system": {
        "pyproject.toml": "[project]\nname = 'tool-config-only'\n[tool.ruff]\nline-length = 100\n",
        "requirements.txt": "tabulate==0.9.0\n",
    },
    "runtime-txt-python-3": {"runtime.txt": "python-3\n"},
    "pipfile-path-relative-to-its-folder": {
        ".binder/Pipfile": '[packages]\ndummy = {path = "..", editable = true}\n',
        "setup.py": "from setuptools import setup\nsetup(name='dummy', py_modules=['dummy_mod'])\n",
        "dummy_mod.py": "ANSWER = 5\n",
    },
    "runtime-txt": {"runtime.txt": "python-3.12\n", "requirements.txt": "tabulate==0.9.0\n"},
    "pipfile-lock-wins": {
        "Pipfile": '[packages]\ntabulate = "==0.8.10"\n',
        "Pipfile.lock": json.dumps(
            {
                "_meta": {"requires": {"python_version": "3.10"}},
                "default": {"tabulate": {"version": "==0.9.0"}},
                "develop": {"six": {"version": "==1.16.0"}},
            }
        ),
        "requirements.txt": "this-should-be-ignored-binder==1\n",
        "setup.py": "raise SystemExit('setup.py must not run')\n",
    },
    "environment-yml-pip": {
        "environment.yml": "name: x\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - tabulate==0.9.0\n",
    },
    "post-build-and-start": {
        "binder/requirements.txt": "tabulate==0.9.0\n",
        "binder/postBuild": "echo built-by-postBuild > postbuild-output.txt\n",
        "binder/start": '#!/bin/bash\nexport STARTED_BY=start-script\nexec "$@"\n',
        "setup.py": "raise SystemExit('root setup.py must be ignored when binder/ exists')\n",
    },
    "repo-packages-win": {"requirements.txt": "packaging==23.2\n"},
    # A postBuild in Python, as some repositories have: run by its shebang, not by bash.
    "post-build-by-shebang": {
        "postBuild": "#!/usr/bin/env python\nimport sys\n"
        "open('post-build-python.txt', 'w').write('%d.%d' % sys.version_info[:2])\n",
        "runtime.txt": "python-3.12\n",
    },
    # As in repo2docker's images: the environment's pip and the stack's jupyter commands on PATH.
    "post-build-uses-pip-and-jupyter": {
        "postBuild": "set -e\npip install tabulate==0.9.0\n"
        "jupyter labextension list > labextensions.txt 2>&1\njupyter --version > jupyter-version.txt\n",
    },
}

CHECKS: dict[str, str] = {
    "requirements-local-refs": "import tabulate, corpus_mod; print(tabulate.__version__, corpus_mod.ANSWER)",
    # Away from the repository folder, the module must come from site-packages (installed, not linked).
    "setup-py-not-editable": (
        "import os, sys; sys.path = [p for p in sys.path if p not in ('', os.getcwd())]; "
        "import corpus_mod2; print('site-packages' in corpus_mod2.__file__)"
    ),
    "requires-python": (
        "import os, sys; sys.path = [p for p in sys.path if p not in ('', os.getcwd())]; "
        "import rp_mod; print('%d.%d' % sys.version_info[:2], rp_mod.ANSWER)"
    ),
    "pyproject-without-build-system": "import tabulate; print(tabulate.__version__)",
    "runtime-txt-python-3": "import sys; print('%d.%d' % sys.version_info[:2])",
    "pipfile-path-relative-to-its-folder": (
        "import os, sys; sys.path = [p for p in sys.path if p not in ('', os.getcwd())]; "
        "import dummy_mod; print(dummy_mod.ANSWER)"
    ),
    "runtime-txt": "import sys, tabulate; print('%d.%d' % sys.version_info[:2])",
    "pipfile-lock-wins": "import tabulate, six; print(tabulate.__version__, six.__version__)",
    "environment-yml-pip": "import sys, tabulate; print('%d.%d' % sys.version_info[:2], tabulate.__version__)",
    "post-build-and-start": "import os; print(open('postbuild-output.txt').read().strip(), os.environ['STARTED_BY'])",
    "repo-packages-win": "import packaging, jupyter_server; print(packaging.__version__)",
    "post-build-by-shebang": "print(open('post-build-python.txt').read())",
    "post-build-uses-pip-and-jupyter": (
        "import pip, tabulate; print(tabulate.__version__, 'jupyterlab' in open('jupyter-version.txt').read(), "
        "'JupyterLab' in open('labextensions.txt').read())"
    ),
}

EXPECTED: dict[str, str] = {
    "requirements-local-refs": "0.9.0 42",
    "setup-py-not-editable": "True",
    "requires-python": "3.11 11",
    "pyproject-without-build-system": "0.9.0",
    "runtime-txt-python-3": "3.10",
    "pipfile-path-relative-to-its-folder": "5",
    "runtime-txt": "3.12",
    "pipfile-lock-wins": "0.9.0 1.16.0",
    "environment-yml-pip": "3.11 0.9.0",
    "post-build-and-start": "built-by-postBuild start-script",
    "repo-packages-win": "23.2",
    "post-build-by-shebang": "3.12",
    "post-build-uses-pip-and-jupyter": "0.9.0 True True",
}


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "binder_actors.cli", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "BINDER_DATA_DIR": str(data_dir)},
    )


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for name, files in CORPUS.items():
        make_repo(root, name, files)
    return root


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_repository_builds_and_behaves_as_on_mybinder(name, corpus_root, stack):
    built = cli(stack.config.data_dir, "build", str(corpus_root / name))
    assert built.returncode == 0, built.stderr[-3000:]
    image = built.stdout.strip()
    ran = cli(stack.config.data_dir, "exec", image, "--", "python", "-c", CHECKS[name])
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() == EXPECTED[name]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"apt.txt": "cowsay\n"}, "apt.txt asks for Debian packages"),
        ({"binder/x": "", ".binder/x": ""}, "both binder/ and .binder/"),
        ({"runtime.txt": "python-3.99\n"}, "Python 3.99 is not installed"),
        ({"runtime.txt": "python-3.12.1\n"}, "python-X.Y"),
        ({"runtime.txt": "python-3.7.3\n"}, "python-X.Y"),
        ({"runtime.txt": "python-3.4\n"}, "this machine has no python3.4"),
        (
            {"runtime.txt": "python-3.10\n", "pyproject.toml": "[project]\nname = 'x'\nrequires-python = '>=3.11'\n"},
            "runtime.txt asks for Python 3.10, which pyproject.toml's requires-python '>=3.11' excludes",
        ),
    ],
)
def test_unbuildable_repositories_fail_in_one_clear_sentence(files, message, tmp_path, stack):
    make_repo(tmp_path, "unbuildable", files)
    built = cli(stack.config.data_dir, "build", str(tmp_path / "unbuildable"))
    assert built.returncode == 1
    assert message in built.stderr
    assert not [p for p in stack.config.images_dir.iterdir() if "unbuildable" in p.name]


def test_exec_of_an_unknown_image_lists_the_built_ones(stack):
    ran = cli(stack.config.data_dir, "exec", "nope:nothing", "--", "true")
    assert ran.returncode == 2 and "no built image 'nope:nothing'" in ran.stderr
