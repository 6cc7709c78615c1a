"""A repository's own Dockerfile on the docker builder: which one is built, and what the engine's output
tells (steps, committed images, the failing instruction); table-driven, no Docker needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from binder_actors.builders.detect import DOCKER_BUILDER, LOCAL_BUILDER, UnsupportedRepository, plan_build
from binder_actors.builders.repo_dockerfile import (
    BuildSteps,
    build_args,
    from_image,
    image_labels,
    journaled_steps,
    missing_singleuser,
    search_path,
)
from binder_actors.docker_engine import BUILDING_LABEL, IMAGE_LABEL

# The classic builder's output of a two-step build, as dockerd 20.10 streams it.
ENGINE_LINES = [
    "Step 1/3 : FROM binder-base:bookworm",
    " ---> 7c1f06d549a1",
    "Step 2/3 : RUN echo two > /x",
    " ---> Running in b3e727aaab28",
    "Removing intermediate container b3e727aaab28",
    " ---> cb8e899ed545",
    "Step 3/3 : RUN pip install nothing-here",
    " ---> Using cache",
    " ---> 0ab1c2d3e4f5",
    "Step 4/4 : run exit 3",
    " ---> Running in 128a58b6911f",
    "output of the step ---> 999999999999",
]


def checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "config_dir"),
    [
        ({"Dockerfile": "FROM x\n"}, "."),
        ({"binder/Dockerfile": "FROM x\n", "Dockerfile": "FROM y\n"}, "binder"),
        ({".binder/Dockerfile": "FROM x\n"}, ".binder"),
        # Beside it nothing is read: neither refused (R, nix) nor installed.
        ({"Dockerfile": "FROM x\n", "install.R": "", "default.nix": "", "requirements.txt": "x\n"}, "."),
        ({"Dockerfile": "FROM x\n", "runtime.txt": "python-3.7.3\n"}, "."),  # a runtime.txt it would refuse
    ],
    ids=["root", "binder-folder-wins", "dot-binder", "other-files-ignored", "bad-runtime-ignored"],
)
def test_the_docker_builder_builds_the_dockerfile_repo2docker_picks(tmp_path, files, config_dir):
    repo = checkout(tmp_path, files)
    plan = plan_build(repo, "3.11", ("3.11",), DOCKER_BUILDER)
    assert (plan.kind, plan.config_dir.relative_to(repo).as_posix()) == ("dockerfile", config_dir)
    assert (plan.installs, plan.apt_packages, plan.post_build, plan.conda) == ((), (), None, None)


def test_a_binder_folder_without_a_dockerfile_hides_the_root_one(tmp_path):
    repo = checkout(tmp_path, {"binder/requirements.txt": "x\n", "Dockerfile": "FROM x\n"})
    assert plan_build(repo, "3.11", ("3.11",), DOCKER_BUILDER).kind == "pip"


def test_the_local_builder_still_refuses_a_dockerfile_naming_it(tmp_path):
    repo = checkout(tmp_path, {"binder/Dockerfile": "FROM x\n"})
    with pytest.raises(UnsupportedRepository, match=r"binder/Dockerfile asks for a Dockerfile.*BINDER_BUILDER=docker"):
        plan_build(repo, "3.11", ("3.11",), LOCAL_BUILDER)


def test_build_args_are_the_ones_repo2docker_passes():
    assert build_args() == {"NB_USER": "jovyan", "NB_UID": "1000"}


def test_the_image_carries_our_labels_and_an_empty_building_label_whatever_its_from():
    labels = image_labels({IMAGE_LABEL: "repo:sha", BUILDING_LABEL: "build-x"})
    assert labels == {IMAGE_LABEL: "repo:sha", BUILDING_LABEL: ""}


def test_engine_output_names_the_step_containers_and_committed_images():
    steps = BuildSteps("Dockerfile")
    for line in ENGINE_LINES:
        steps.read(line)
    assert steps.containers == {"b3e727aaab28", "128a58b6911f"}
    assert steps.images == {"7c1f06d549a1", "cb8e899ed545", "0ab1c2d3e4f5"}
    assert (steps.instruction, steps.arguments) == ("RUN", "exit 3")


@pytest.mark.parametrize(
    ("step", "error", "expected"),
    [
        (
            "Step 3/4 : FROM nosuch.example/never/there:1.0",
            'Get "https://nosuch.example/v2/": no such host\n',
            "The image nosuch.example/never/there:1.0 that binder/Dockerfile builds FROM could not be pulled (Get",
        ),
        ("Step 1/2 : FROM --platform=linux/amd64 python:3.99 AS build", "denied", "The image python:3.99 that"),
        ("Step 1/2 : from python:3.99", "denied", "The image python:3.99 that"),
        (
            "Step 2/2 : RUN exit 3",
            "The command '/bin/sh -c exit 3' returned a non-zero code: 3",
            "docker build failed: The command '/bin/sh -c exit 3' returned a non-zero code: 3",
        ),
        ("", "no such file", "docker build failed: no such file"),  # before any step (a bad context)
    ],
    ids=["from-unreachable", "from-platform-and-stage", "from-lowercase", "run-fails", "before-steps"],
)
def test_a_failure_names_what_failed(step, error, expected):
    steps = BuildSteps("binder/Dockerfile")
    steps.read(step)
    assert steps.failure(error).startswith(expected), steps.failure(error)


@pytest.mark.parametrize(
    ("arguments", "image"),
    [("x:1", "x:1"), ("x:1 AS base", "x:1"), ("--platform=$BUILDPLATFORM x", "x"), ("$BASE", "$BASE")],
)
def test_from_image_is_the_instructions_image(arguments, image):
    assert from_image(arguments) == image


@pytest.mark.parametrize(
    ("env", "folders"),
    [
        (None, ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
        (["LANG=C", "PATH=/opt/venv/bin:/usr/bin"], ["/opt/venv/bin", "/usr/bin"]),
        (["PATH=relative:/srv/bin:"], ["/srv/bin"]),  # relative entries name no folder of the image
    ],
)
def test_search_path_is_the_images_path(env, folders):
    assert search_path(env) == folders


def test_missing_singleuser_says_the_dockerfile_must_install_jupyterhub():
    message = missing_singleuser("binder/Dockerfile")
    assert "binder/Dockerfile has no jupyterhub-singleuser" in message
    assert "must install jupyterhub" in message


def test_committed_layers_are_journaled_once_each_as_they_come(tmp_path):
    steps = journaled_steps(tmp_path, "build-x", "Dockerfile")
    assert steps.journal is not None and steps.journal.read_text() == ""
    for line in ENGINE_LINES + [" ---> cb8e899ed545"]:  # a layer named twice is written once
        steps.read(line)
    assert steps.journal.read_text().split() == ["7c1f06d549a1", "cb8e899ed545", "0ab1c2d3e4f5"]
