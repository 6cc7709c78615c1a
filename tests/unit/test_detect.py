"""repo2docker's rules, table-driven: which files win, which Python, what gets installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from binder_actors.builders.detect import DOCKER_BUILDER, UnsupportedRepository, plan_build, script_command

ALL_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def repo(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return tmp_path


def plan(tmp_path: Path, files: dict[str, str], available: tuple[str, ...] = ALL_PYTHONS):
    return plan_build(repo(tmp_path, files), "3.10", available)


def installs(tmp_path: Path, files: dict[str, str]) -> list[tuple[str, ...]]:
    root = str(tmp_path)
    return [tuple(a.replace(root, "<repo>") for a in step.args) for step in plan(tmp_path, files).installs]


@pytest.mark.parametrize(
    ("files", "config_dir"),
    [
        ({"requirements.txt": "a"}, "."),
        ({"binder/requirements.txt": "a", "requirements.txt": "b"}, "binder"),
        ({".binder/requirements.txt": "a", "requirements.txt": "b"}, ".binder"),
    ],
)
def test_binder_folders_take_precedence_over_the_root(tmp_path, files, config_dir):
    expected = tmp_path if config_dir == "." else tmp_path / config_dir
    assert plan(tmp_path, files).config_dir == expected


def test_binder_and_dot_binder_together_is_an_error(tmp_path):
    with pytest.raises(UnsupportedRepository, match="both binder/ and .binder/"):
        plan(tmp_path, {"binder/a": "", ".binder/a": ""})


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, []),
        ({"requirements.txt": "x"}, [("-r", "<repo>/requirements.txt")]),
        ({"setup.py": ""}, [(".",)]),
        # A root pyproject.toml is installed only with both [project] and [build-system], as repo2docker does.
        ({"pyproject.toml": "[project]\nname='x'\n[build-system]\nrequires=['hatchling']\n"}, [(".",)]),
        ({"pyproject.toml": "[project]\nname='x'\n"}, []),
        ({"pyproject.toml": "[build-system]\nrequires=['setuptools']\n"}, []),
        ({"pyproject.toml": "[tool.ruff]\nline-length = 120\n"}, []),
        ({"pyproject.toml": "[tool.ruff]\n", "setup.py": ""}, [(".",)]),
        ({"requirements.txt": "-e .\n", "setup.py": ""}, [("-r", "<repo>/requirements.txt"), (".",)]),
        # Root-only files are ignored when a binder folder exists.
        ({"binder/requirements.txt": "x", "setup.py": ""}, [("-r", "<repo>/binder/requirements.txt")]),
        # Pipfile beats requirements.txt, and setup.py is not installed implicitly.
        (
            {
                "Pipfile": '[packages]\nnumpy = "*"\nrequests = ">=2"\n',
                "requirements.txt": "x",
                "setup.py": "",
            },
            [("numpy", "requests>=2")],
        ),
        ({"Pipfile": "[packages]\n[dev-packages]\npytest = '==8.0'\n"}, [("pytest==8.0",)]),
        ({"Pipfile": '[packages]\nmine = {path = ".", editable = true}\n'}, [("-e", ".")]),
        (
            {"environment.yml": "dependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - tabulate==0.9\n"},
            [("tabulate==0.9",)],
        ),
    ],
)
def test_what_gets_installed(tmp_path, files, expected):
    assert installs(tmp_path, files) == expected


@pytest.mark.parametrize(
    ("files", "cwd"),
    [
        ({"Pipfile": '[packages]\nmine = {path = ".", editable = true}\n'}, "."),
        ({".binder/Pipfile": '[packages]\ndummy = {path = "..", editable = true}\n'}, ".binder"),
        ({"binder/Pipfile.lock": json.dumps({"default": {"d": {"path": ".."}}})}, "binder"),
    ],
)
def test_pipfile_paths_are_relative_to_the_pipfiles_folder(tmp_path, files, cwd):
    (step,) = plan(tmp_path, files).installs
    assert step.cwd == (tmp_path / cwd if cwd != "." else tmp_path)


def test_pipfile_lock_wins_and_installs_dev_packages(tmp_path):
    lock = {
        "_meta": {"requires": {"python_version": "3.11"}},
        "default": {
            "numpy": {"version": "==1.26.4", "markers": "python_version >= '3.9'"},
            "pkg": {"git": "https://example.org/pkg.git", "ref": "abc"},
        },
        "develop": {"pytest": {"version": "==8.0.0", "extras": ["testing"]}},
    }
    files = {"Pipfile": '[packages]\nnumpy = "*"\n', "Pipfile.lock": json.dumps(lock)}
    result = plan(tmp_path, files)
    assert result.python_version == "3.11"
    assert result.installs[0].args == (
        "numpy==1.26.4; python_version >= '3.9'",
        "pkg @ git+https://example.org/pkg.git@abc",
        "pytest[testing]==8.0.0",
    )


@pytest.mark.parametrize(
    ("files", "available", "python"),
    [
        ({}, ALL_PYTHONS, "3.10"),
        ({"runtime.txt": "python-3.12\n"}, ALL_PYTHONS, "3.12"),
        ({"binder/runtime.txt": "python-3.9", "runtime.txt": "python-3.12"}, ALL_PYTHONS, "3.9"),
        ({"pyproject.toml": "[project]\nname='x'\nrequires-python='>=3.9,<3.12'\n"}, ALL_PYTHONS, "3.11"),
        ({"pyproject.toml": "[project]\nname='x'\nrequires-python='>=3.9'\n"}, ("3.10", "3.11"), "3.11"),
        # requires-python is a root-only file: ignored when a binder folder exists.
        (
            {"binder/requirements.txt": "", "pyproject.toml": "[project]\nrequires-python='>=3.12'\n"},
            ALL_PYTHONS,
            "3.10",
        ),
        ({"runtime.txt": "python-3.12", "pyproject.toml": "[project]\nrequires-python='>=3.9'\n"}, ALL_PYTHONS, "3.12"),
        # A binder folder hides the root pyproject.toml, so it cannot conflict with runtime.txt.
        (
            {"binder/runtime.txt": "python-3.9", "pyproject.toml": "[project]\nrequires-python='>=3.12'\n"},
            ALL_PYTHONS,
            "3.9",
        ),
        ({"environment.yml": "dependencies:\n  - python=3.12.1\n"}, ALL_PYTHONS, "3.12"),
        ({"environment.yml": "dependencies:\n  - python>=3.11\n"}, ("3.10", "3.11", "3.12"), "3.12"),
        ({"Pipfile": '[requires]\npython_version = "3.9"\n'}, ALL_PYTHONS, "3.9"),
    ],
)
def test_which_python(tmp_path, files, available, python):
    assert plan(tmp_path, files, available).python_version == python


@pytest.mark.parametrize("runtime", ["python-3.12.1", "python3.11", "python-3.7.3", "python"])
def test_runtime_txt_must_be_python_major_minor(tmp_path, runtime):
    with pytest.raises(UnsupportedRepository, match="python-X.Y"):
        plan(tmp_path, {"runtime.txt": runtime})


@pytest.mark.parametrize(
    ("runtime", "python"),
    [("python-3", "3.10"), ("python-3\n", "3.10"), ("python-3.11", "3.11"), ("python-3.7", "3.7")],
)
def test_runtime_txt_python_3_is_repo2dockers_default_python_3(tmp_path, runtime, python):
    assert plan(tmp_path, {"runtime.txt": runtime}).python_version == python


def test_runtime_txt_of_a_python_that_does_not_exist_is_refused_naming_it(tmp_path):
    with pytest.raises(UnsupportedRepository, match="no Python 4"):
        plan(tmp_path, {"runtime.txt": "python-4"})


@pytest.mark.parametrize(
    ("files", "python", "kernel_environment"),
    [
        ({"runtime.txt": "python-2"}, "2.7", True),
        ({"runtime.txt": "python-2.7"}, "2.7", True),
        ({"runtime.txt": "python-3.6"}, "3.6", True),
        ({"runtime.txt": "python-3.5"}, "3.5", True),
        ({"runtime.txt": "python-3.7"}, "3.7", False),
        ({"runtime.txt": "python-3.10"}, "3.10", False),
        ({}, "3.10", False),
        ({"Pipfile": '[requires]\npython_version = "2.7"\n'}, "2.7", True),
        ({"environment.yml": "dependencies:\n  - python=3.6\n  - pip:\n    - tabulate\n"}, "3.6", True),
    ],
)
def test_pythons_before_3_7_run_as_a_kernel_beside_the_server_as_in_repo2docker(
    tmp_path, files, python, kernel_environment
):
    result = plan(tmp_path, files)
    assert (result.python_version, result.kernel_environment) == (python, kernel_environment)


@pytest.mark.parametrize(
    ("files", "kernel", "server"),
    [
        # requirements.txt (and the repository itself) go to the kernel, requirements3.txt to the server.
        (
            {"runtime.txt": "python-2.7", "requirements.txt": "a", "requirements3.txt": "b", "setup.py": ""},
            [("-r", "<repo>/requirements.txt"), (".",)],
            [("-r", "<repo>/requirements3.txt")],
        ),
        (
            {"binder/runtime.txt": "python-3.6", "binder/requirements3.txt": "b"},
            [],
            [("-r", "<repo>/binder/requirements3.txt")],
        ),
        # Without a kernel environment requirements3.txt means nothing, as in repo2docker.
        ({"runtime.txt": "python-3.11", "requirements3.txt": "b"}, [], []),
        ({"requirements.txt": "a", "requirements3.txt": "b"}, [("-r", "<repo>/requirements.txt")], []),
    ],
)
def test_where_each_requirements_file_goes_beside_a_kernel_environment(tmp_path, files, kernel, server):
    result = plan(tmp_path, files)
    root = str(tmp_path)
    args = [
        [tuple(a.replace(root, "<repo>") for a in step.args) for step in steps]
        for steps in (result.installs, result.server_installs)
    ]
    assert args == [kernel, server]


@pytest.mark.parametrize(
    ("runtime", "requires"),
    [("python-3.9", ">=3.12"), ("python-2.7", ">=3.8"), ("python-3", ">=3.11"), ("python-3.9", ">=3.9.1")],
)
def test_runtime_txt_that_requires_python_excludes_is_refused_as_repo2docker_does(tmp_path, runtime, requires):
    files = {"runtime.txt": runtime, "pyproject.toml": f"[project]\nname='x'\nrequires-python='{requires}'\n"}
    with pytest.raises(UnsupportedRepository, match="requires-python") as refused:
        plan(tmp_path, files)
    assert "runtime.txt asks for Python" in str(refused.value)


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"Dockerfile": "FROM x"}, "Dockerfile"),
        ({"apt.txt": "cowsay"}, "apt.txt"),
        ({"binder/apt.txt": "cowsay"}, "binder/apt.txt"),
        ({"install.R": ""}, "install.R"),
        ({"runtime.txt": "r-4.1-2022-01-01"}, "runtime.txt"),
        ({"Project.toml": ""}, "Project.toml"),
        ({"default.nix": ""}, "default.nix"),
    ],
)
def test_what_needs_containers_is_refused_naming_file_and_backend(tmp_path, files, named):
    with pytest.raises(UnsupportedRepository) as refused:
        plan(tmp_path, files)
    assert named in str(refused.value)
    assert "BINDER_BUILDER=docker" in str(refused.value)


def test_no_matching_python_is_an_error_naming_the_specifier(tmp_path):
    with pytest.raises(UnsupportedRepository, match="<3.5"):
        plan(tmp_path, {"pyproject.toml": "[project]\nrequires-python='<3.5'\n"})


def test_post_build_and_start_are_found_in_the_config_dir(tmp_path):
    result = plan(tmp_path, {"binder/postBuild": "echo", "binder/start": 'exec "$@"', "postBuild": "no"})
    assert result.post_build == tmp_path / "binder" / "postBuild"
    assert result.start == tmp_path / "binder" / "start"


@pytest.mark.parametrize(
    ("environment", "channels", "specs"),
    [
        # No channels: the configured ones (conda-forge by default); no python: the default 3.10.
        ("dependencies:\n  - numpy>=1.20\n", (), ("python 3.10.*", "numpy>=1.20")),
        (
            "name: ignored\nchannels: [bioconda, conda-forge]\ndependencies:\n  - python=3.11\n  - samtools\n",
            ("bioconda", "conda-forge"),
            ("python 3.11.*", "python=3.11", "samtools"),
        ),
        (
            "dependencies:\n  - python>=3.11\n  - conda-forge::numpy\n  - pip\n",
            (),
            ("python 3.13.*", "python>=3.11", "conda-forge::numpy"),
        ),
        ("dependencies:\n  - python=3.10.4\n  - r-base\n", (), ("python 3.10.*", "python=3.10.4", "r-base")),
    ],
)
def test_conda_packages_are_planned_for_the_local_builder(tmp_path, environment, channels, specs):
    result = plan(tmp_path, {"environment.yml": environment})
    assert result.conda is not None
    assert (result.conda.source, result.conda.channels, result.conda.specs) == ("environment.yml", channels, specs)


def test_an_environment_with_only_python_and_pip_needs_no_conda(tmp_path):
    assert plan(tmp_path, {"environment.yml": "dependencies:\n  - python=3.11\n  - pip\n"}).conda is None


def test_the_pip_section_runs_from_the_files_folder_with_each_option_split(tmp_path):
    files = {
        "binder/environment.yml": "dependencies:\n  - numpy\n  - pip:\n    - -r extra.txt\n    - -e ..\n    - six\n"
    }
    (step,) = plan(tmp_path, files).installs
    assert step.args == ("-r", "extra.txt", "-e", "..", "six")
    assert step.cwd == tmp_path / "binder"


def test_the_docker_builder_plans_conda_packages_as_the_local_builder_does(tmp_path):
    files = {"environment.yml": "dependencies:\n  - numpy\n  - python=3.11\n"}
    on_docker = plan_build(repo(tmp_path, files), "3.10", ALL_PYTHONS, DOCKER_BUILDER)
    assert on_docker.conda is not None
    assert on_docker.conda == plan_build(tmp_path, "3.10", ALL_PYTHONS).conda


@pytest.mark.parametrize(
    ("content", "runs_with_bash"),
    [
        ("#!/usr/bin/env python3\nprint('hi')\n", False),
        ("#!/bin/bash\necho hi\n", False),
        ("echo hi\n", True),
        ("", True),
        (" #!/bin/sh\n", True),
        ("# comment\n#!/bin/sh\n", True),
    ],
)
def test_post_build_runs_by_its_shebang_else_with_bash(tmp_path, content, runs_with_bash):
    script = tmp_path / "postBuild"
    script.write_text(content)
    expected = ("bash", str(script)) if runs_with_bash else (str(script),)
    assert script_command(script) == expected
