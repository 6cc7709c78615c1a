"""The docker builder's Dockerfile, from the plan: table-driven, no Docker needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from binder_actors.builders.detect import DOCKER_BUILDER, UnsupportedRepository, plan_build
from binder_actors.builders.docker import registry_host
from binder_actors.builders.dockerfile import make_dockerfile


def dockerfile(tmp_path: Path, files: dict[str, str]) -> list[str]:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    plan = plan_build(tmp_path, "3.11", ("3.11",), DOCKER_BUILDER)
    return make_dockerfile(plan, tmp_path, base_image="binder-base:bookworm", build_name="build-x").splitlines()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"apt.txt": "jq\n# a comment\n\ncowsay\n"}, "apt-get install -y --no-install-recommends jq cowsay &&"),
        (
            {"requirements.txt": "tabulate\n"},
            'RUN ["uv", "pip", "install", "--python", "/srv/venv/bin/python", "-r", "requirements.txt"]',
        ),
        ({"binder/requirements.txt": "x\n"}, '"-r", "binder/requirements.txt"]'),
        ({"setup.py": ""}, '"/srv/venv/bin/python", "."]'),
        ({"binder/postBuild": "echo"}, 'RUN ["bash", "/home/jovyan/binder/postBuild"]'),
        ({"start": 'exec "$@"'}, 'ENTRYPOINT ["tini", "-g", "--", "/home/jovyan/start"]'),
        ({}, 'ENTRYPOINT ["tini", "-g", "--"]'),
    ],
    ids=["apt", "requirements", "binder-folder", "setup.py", "postBuild", "start", "nothing"],
)
def test_dockerfile_line_for_each_file(tmp_path, files, expected):
    assert any(expected in line for line in dockerfile(tmp_path, files)), dockerfile(tmp_path, files)


@pytest.mark.parametrize(
    ("post_build", "run"),
    [
        ("echo no shebang\n", 'RUN ["bash", "/home/jovyan/postBuild"]'),
        ("#!/usr/bin/env python\nprint(1)\n", 'RUN ["/home/jovyan/postBuild"]'),
        ("#!/bin/sh\necho sh\n", 'RUN ["/home/jovyan/postBuild"]'),
        ("\n#!/usr/bin/env python\n", 'RUN ["bash", "/home/jovyan/postBuild"]'),  # a shebang only counts first
        ("", 'RUN ["bash", "/home/jovyan/postBuild"]'),
    ],
    ids=["plain", "python-shebang", "sh-shebang", "shebang-not-first", "empty"],
)
def test_post_build_runs_by_its_shebang_else_with_bash(tmp_path, post_build, run):
    lines = dockerfile(tmp_path, {"postBuild": post_build})
    assert [line for line in lines if "postBuild" in line and "chmod" not in line] == [run]


def test_shared_stack_comes_before_anything_of_the_repository(tmp_path):
    lines = dockerfile(tmp_path, {"apt.txt": "jq\n", "requirements.txt": "x\n"})
    stack = next(i for i, line in enumerate(lines) if "jupyterhub" in line)
    first_own = next(i for i, line in enumerate(lines) if "build-x" in line)
    assert stack < first_own < next(i for i, line in enumerate(lines) if "apt-get" in line)
    assert lines[-1] == 'LABEL binder-actors.building=""'  # sessions inherit an empty build label


@pytest.mark.parametrize("line", ["jq; rm -rf /", "$(id)", "Foo"])
def test_apt_txt_refuses_what_is_not_a_package_name(tmp_path, line):
    with pytest.raises(UnsupportedRepository, match="not a Debian package name"):
        dockerfile(tmp_path, {"apt.txt": line + "\n"})


def test_local_builder_still_refuses_apt_txt(tmp_path):
    (tmp_path / "apt.txt").write_text("jq\n")
    with pytest.raises(UnsupportedRepository, match="the local builder cannot install"):
        plan_build(tmp_path, "3.10", ("3.10",))


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("name:tag", ""),
        ("registry.example.org/binder-x:t", "registry.example.org"),
        ("127.0.0.1:5000/x:t", "127.0.0.1:5000"),
    ],
)
def test_registry_host_decides_whether_to_push(image, host):
    assert registry_host(image) == host


def test_the_pip_section_of_a_binder_environment_yml_runs_from_its_folder(tmp_path):
    files = {"binder/environment.yml": "dependencies:\n  - python=3.11\n  - pip:\n    - -r extra.txt\n"}
    lines = dockerfile(tmp_path, files)
    run = lines.index('RUN ["uv", "pip", "install", "--python", "/srv/venv/bin/python", "-r", "extra.txt"]')
    assert lines[run - 1 : run + 2 : 2] == ["WORKDIR /home/jovyan/binder", "WORKDIR /home/jovyan"]


CONDA_ENV = "dependencies:\n  - python=3.10\n  - condalib\n  - pip:\n    - -r extra.txt\n"


@pytest.mark.parametrize(
    ("files", "expected", "absent"),
    [
        ({"environment.yml": CONDA_ENV}, "COPY --chown=1000:1000 conda/ /srv/conda/", "python3 -m venv"),
        (
            {"environment.yml": CONDA_ENV},
            "RUN uv venv --quiet --python /srv/conda/bin/python /srv/venv && uv pip install --compile-bytecode",
            "python3 -m venv",
        ),
        ({"environment.yml": CONDA_ENV}, "ENV VIRTUAL_ENV=/srv/conda PATH=/srv/conda/bin:/home/jovyan/.local/bin:", ""),
        (
            {"environment.yml": CONDA_ENV},
            'RUN ["uv", "pip", "install", "--python", "/srv/conda/bin/python", "-r", "extra.txt"]',
            '/srv/venv/bin/python", "-r',
        ),
        ({"requirements.txt": "x\n"}, "RUN python3 -m venv /srv/venv && uv pip install", "/srv/conda"),
    ],
    ids=["conda-copied", "stack-on-conda-python", "conda-path-first", "pip-section-into-conda", "no-conda"],
)
def test_dockerfile_of_a_conda_environment(tmp_path, files, expected, absent):
    lines = dockerfile(tmp_path, files)
    assert any(expected in line for line in lines), lines
    assert not absent or not any(absent in line for line in lines), lines


def test_a_conda_environment_and_its_stack_are_shared_steps_before_anything_of_the_repository(tmp_path):
    lines = dockerfile(tmp_path, {"environment.yml": CONDA_ENV, "apt.txt": "jq\n"})
    copy = lines.index("COPY --chown=1000:1000 conda/ /srv/conda/")
    stack = next(i for i, line in enumerate(lines) if "jupyterhub" in line)
    first_own = lines.index("LABEL binder-actors.building=build-x")
    assert copy < stack < first_own < next(i for i, line in enumerate(lines) if "apt-get" in line)
