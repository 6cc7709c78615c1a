"""`binder-actors plan <dir>`: the build pack repo2docker picks, the Python, the steps, what is not honoured
and each backend's refusal, read from real checkouts in tmp_path through the CLI's main function."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from binder_actors.cli import main

PIP = {"requirements.txt": "numpy\n"}
SETUP_PY = {"setup.py": "from setuptools import setup\nsetup()\n"}
PIPFILE = {"Pipfile": '[packages]\nrequests = "*"\n[requires]\npython_version = "3.11"\n', "requirements.txt": "x\n"}
CONDA = {
    "binder/environment.yml": "dependencies:\n  - python=3.12\n  - numpy\n  - pip\n  - pip:\n    - tabulate\n",
    "binder/postBuild": "echo hi\n",
    "requirements.txt": "flask\n",
}
R = {"runtime.txt": "r-4.3-2023-06-01\n", "install.R": 'install.packages("ggplot2")\n', "requirements.txt": "x\n"}
JULIA = {"Project.toml": "[deps]\n", "requirements.txt": "x\n"}
DOCKERFILE = {"Dockerfile": "FROM busybox\n", "requirements.txt": "x\n", "apt.txt": "jq\n"}
NIX = {"default.nix": "{}\n", "requirements.txt": "x\n", "postBuild": "echo hi\n"}


def checkout(root: Path, files: dict[str, str]) -> Path:
    repo = root / "repo"
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    repo.mkdir(exist_ok=True)
    return repo


@pytest.fixture
def backend(monkeypatch):
    """Choose the configured backend as a user does, with the documented defaults for the rest."""
    for name in ("BINDER_CONFIG_FILE", "BINDER_PYTHON_VERSION", "BINDER_CONDA_CHANNELS", "BINDER_CRAN_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BINDER_DOCKER_BASE_PYTHON", "3.11")

    def choose(name: str) -> None:
        monkeypatch.setenv("BINDER_BUILDER", name)

    return choose


def plan_json(repo: Path, capsys) -> dict:
    assert main(["plan", str(repo), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("files", "kind", "python"),
    [
        ({}, "pip", "3.10"),
        (PIP, "pip", "3.10"),
        ({**PIP, "runtime.txt": "python-3.12\n"}, "pip", "3.12"),
        (SETUP_PY, "setup.py", "3.10"),
        ({"pyproject.toml": "[project]\nname='x'\n[build-system]\nrequires=['hatchling']\n"}, "setup.py", "3.10"),
        ({**SETUP_PY, **PIP}, "pip", "3.10"),
        (PIPFILE, "pipfile", "3.11"),
        ({"Pipfile.lock": json.dumps({"_meta": {"requires": {"python_version": "3.9"}}})}, "pipfile", "3.9"),
        (CONDA, "conda", "3.12"),
        (R, "r", "3.10"),
        ({"DESCRIPTION": "Package: x\n"}, "r", "3.10"),
        (JULIA, "julia", "3.10"),
        ({"REQUIRE": "julia 0.6\n"}, "julia", "3.10"),
        (DOCKERFILE, "dockerfile", None),
        (NIX, "nix", None),
        # repo2docker's order: Dockerfile, Julia, nix, R, conda, Pipfile, Python.
        ({**DOCKERFILE, **JULIA, "environment.yml": "dependencies: [numpy]\n"}, "dockerfile", None),
        ({**JULIA, "default.nix": "{}\n", **R}, "julia", "3.10"),
        ({**NIX, **R}, "nix", None),
        ({**R, "environment.yml": "dependencies: [numpy]\n"}, "r", "3.10"),
        ({"environment.yml": "dependencies: [python=3.11]\n", **PIPFILE}, "conda", "3.11"),
        # A binder folder hides the root's files, DESCRIPTION and Dockerfile included.
        ({"binder/requirements.txt": "x\n", "Dockerfile": "FROM x\n", "DESCRIPTION": ""}, "pip", "3.10"),
        ({".binder/Dockerfile": "FROM x\n", "requirements.txt": "x\n"}, "dockerfile", None),
        # An R runtime without a snapshot date is not how repo2docker picks R.
        ({"runtime.txt": "r-4.3\n"}, "pip", "3.10"),
    ],
)
def test_kind_and_python_are_repo2dockers_whatever_the_backend_can_build(
    tmp_path, capsys, backend, files, kind, python
):
    repo = checkout(tmp_path, files)
    backend("kubernetes")
    plan = plan_json(repo, capsys)
    assert (plan["kind"], plan["python"], plan["backend"], plan["builds"]) == (kind, python, "kubernetes", True)
    for builder in ("local", "docker"):
        backend(builder)
        assert plan_json(repo, capsys)["kind"] == kind


@pytest.mark.parametrize(
    ("files", "builder", "refused_with"),
    [
        (PIP, "local", None),
        (PIP, "docker", None),
        ({**PIP, "apt.txt": "jq\n"}, "local", "apt.txt asks for Debian packages, which the local builder cannot"),
        ({**PIP, "apt.txt": "jq\n"}, "docker", None),
        (DOCKERFILE, "local", "Dockerfile asks for a Dockerfile, which the local builder cannot"),
        (DOCKERFILE, "docker", None),  # built as repo2docker's Dockerfile build pack builds it
        ({"binder/Dockerfile": "FROM x\n", "binder/install.R": ""}, "docker", None),  # the Dockerfile alone
        (R, "docker", None),  # Debian's R, install.R against the snapshot
        (R, "local", "install.R asks for R packages, which the local builder cannot"),
        ({"DESCRIPTION": "Package: x\n"}, "docker", None),
        ({"DESCRIPTION": "Package: x\n"}, "local", "DESCRIPTION asks for an R package, which the local builder"),
        ({"runtime.txt": "r-2017-06-01\n"}, "docker", "runtime.txt asks for the CRAN snapshot of 2017-06-01"),
        ({**R, "environment.yml": "dependencies: [numpy]\n"}, "docker", None),  # Debian's R beside conda
        ({"install.R": "", "environment.yml": "dependencies: [r-base]\n"}, "docker", "runs only in an R repository"),
        (JULIA, "local", "Project.toml asks for Julia packages"),
        (NIX, "docker", "default.nix asks for nix"),
        ({"runtime.txt": "python-3.12\n"}, "local", None),
        ({"runtime.txt": "python-3.12\n"}, "docker", "asks for Python 3.12, but the base image binder-base:bookworm"),
        ({"runtime.txt": "python-3.99\n"}, "local", "Python 3.99 is not installed on this machine"),
        ({"runtime.txt": "python-3.7.3\n"}, "local", "write `python-X.Y`"),
        ({"binder/a.txt": "", ".binder/b.txt": ""}, "docker", "both binder/ and .binder/"),
        (DOCKERFILE, "kubernetes", None),
    ],
)
def test_a_checkout_the_backend_cannot_build_still_gets_its_plan_with_the_refusal(
    tmp_path, capsys, backend, files, builder, refused_with
):
    backend(builder)
    plan = plan_json(checkout(tmp_path, files), capsys)
    assert plan["backend"] == builder
    assert plan["builds"] is (refused_with is None)
    if refused_with is None:
        assert plan["refusal"] is None
    else:
        assert refused_with in plan["refusal"]


def test_the_removed_repo2docker_mode_of_the_docker_backend_fails_the_load_saying_why(
    tmp_path, capsys, backend, monkeypatch
):
    backend("docker")
    monkeypatch.setenv("BINDER_DOCKER_USE_REPO2DOCKER", "false")  # whatever its value: it does nothing now
    assert main(["plan", str(checkout(tmp_path, DOCKERFILE)), "--json"]) == 2
    error = capsys.readouterr().err
    assert "BINDER_DOCKER_USE_REPO2DOCKER: removed" in error
    assert "repo2docker needs buildx" in error


def test_an_r_plan_on_docker_names_debians_r_and_the_snapshot_url(tmp_path, capsys, backend, monkeypatch):
    backend("docker")
    plan = plan_json(checkout(tmp_path, R), capsys)
    assert (plan["kind"], plan["builds"], plan["kind_files"]) == ("r", True, ["runtime.txt", "install.R"])
    assert "R: runtime.txt asks for R 4.3; Debian's r-base-core of the base image" in plan["notes"][0]
    assert plan["notes"][1] == (
        "R packages (install.R) from the CRAN snapshot of 2023-06-01: "
        "https://packagemanager.posit.co/cran/__linux__/bookworm/2023-06-01"
    )
    monkeypatch.setenv("BINDER_CRAN_URL", "http://cran.example.org/snapshots/{date}/")
    plan = plan_json(checkout(tmp_path, R), capsys)
    assert plan["notes"][1].endswith("2023-06-01: http://cran.example.org/snapshots/2023-06-01/")


def test_the_json_plan_lists_steps_conda_scripts_and_what_is_not_honoured(tmp_path, capsys, backend):
    backend("local")
    plan = plan_json(checkout(tmp_path, CONDA), capsys)
    assert plan["config_dir"] == "binder"
    assert plan["conda"] == {
        "source": "binder/environment.yml",
        "channels": ["conda-forge"],
        "channels_from": "BINDER_CONDA_CHANNELS",
        "specs": ["python 3.12.*", "python=3.12", "numpy"],
    }
    assert plan["installs"] == [
        {"description": "installing the pip section of environment.yml", "args": ["tabulate"], "cwd": "binder"}
    ]
    assert (plan["post_build"], plan["start"], plan["apt_packages"]) == ("binder/postBuild", None, [])
    assert plan["not_honoured"] == [
        {"file": "requirements.txt", "reason": "binder/ exists: repo2docker reads only that folder"}
    ]


@pytest.mark.parametrize(
    ("files", "ignored"),
    [
        (PIP, {}),
        (
            {"binder/requirements.txt": "", "setup.py": "", "postBuild": ""},
            {"setup.py": "binder/", "postBuild": "binder/"},
        ),
        ({"binder/setup.py": "", "binder/requirements.txt": ""}, {"binder/setup.py": "only at the root"}),
        (
            {"environment.yml": "dependencies: [numpy]\n", **PIP, **SETUP_PY},
            {"requirements.txt": "environment.yml wins"},
        ),
        (PIPFILE, {"requirements.txt": "Pipfile wins"}),
        ({"Pipfile": "", "Pipfile.lock": "{}"}, {"Pipfile": "Pipfile.lock wins"}),
        ({"pyproject.toml": "[tool.ruff]\n"}, {"pyproject.toml": "both [project] and [build-system]"}),
        ({**PIP, "install.R": ""}, {"install.R": "only in an R repository"}),
        (DOCKERFILE, {"requirements.txt": "Dockerfile alone", "apt.txt": "Dockerfile alone"}),
        (NIX, {"requirements.txt": "default.nix"}),
    ],
)
def test_every_file_the_build_will_not_honour_is_named_with_its_reason(tmp_path, capsys, backend, files, ignored):
    backend("kubernetes")
    plan = plan_json(checkout(tmp_path, files), capsys)
    found = {entry["file"]: entry["reason"] for entry in plan["not_honoured"]}
    assert set(found) >= set(ignored)
    for name, says in ignored.items():
        assert says in found[name]
    if not ignored:
        assert found == {}


@pytest.mark.parametrize(
    ("files", "builder", "lines"),
    [
        (
            CONDA,
            "local",
            [
                "Plan for {repo} on the local backend (the local builder)",
                "  kind:       conda",
                "  python:     3.12",
                "  config:     binder/",
                "  conda:      binder/environment.yml",
                "    channels: conda-forge (from BINDER_CONDA_CHANNELS)",
                "    packages: python 3.12.*, python=3.12, numpy",
                "  install:    installing the pip section of environment.yml (from binder/): pip install tabulate",
                "  postBuild:  binder/postBuild",
                "    requirements.txt: binder/ exists: repo2docker reads only that folder",
                "  builds:     yes",
            ],
        ),
        (
            {**PIP, "apt.txt": "jq\ncurl # for downloads\n"},
            "local",
            ["  apt:        jq curl", "  builds:     no: apt.txt asks for Debian packages, which the local builder"],
        ),
        (
            {**PIP, "apt.txt": "jq curl\n"},
            "kubernetes",
            ["  note:       The rest of this plan is unknown: apt.txt: 'jq curl' is not a Debian package name."],
        ),
        (
            DOCKERFILE,
            "kubernetes",
            [
                "  kind:       dockerfile",
                "  python:     - (none chosen)",
                "  dockerfile: Dockerfile",
                "  builds:     yes",
            ],
        ),
        (R, "kubernetes", ["  r:          runtime.txt, install.R", "  install:    installing requirements.txt"]),
    ],
)
def test_the_text_plan_reads_top_to_bottom(tmp_path, capsys, backend, files, builder, lines):
    backend(builder)
    repo = checkout(tmp_path, files)
    assert main(["plan", str(repo)]) == 0
    out = capsys.readouterr().out.splitlines()
    for line in lines:
        line = line.format(repo=repo.resolve())
        assert any(o.startswith(line) for o in out), f"{line!r} not in:\n" + "\n".join(out)


@pytest.mark.parametrize("make", ["missing", "a file"])
def test_plan_exits_non_zero_only_when_the_checkout_cannot_be_read(tmp_path, capsys, backend, make):
    backend("local")
    target = tmp_path / "nothing-here"
    if make == "a file":
        target.write_text("")
    assert main(["plan", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{target} is not a folder" in captured.err


def test_a_file_that_is_not_text_is_an_error_naming_it(tmp_path, capsys, backend):
    backend("local")
    repo = checkout(tmp_path, {})
    (repo / "runtime.txt").write_bytes(b"python-3.11\xff\xfe\n")
    assert main(["plan", str(repo)]) == 2
    assert "cannot read the checkout" in capsys.readouterr().err


def test_a_refused_or_unreadable_configuration_still_exits_zero(tmp_path, capsys, backend):
    backend("local")
    repo = checkout(tmp_path, {"environment.yml": "dependencies: [\n", "Dockerfile": "FROM x\n"})
    assert main(["plan", str(repo)]) == 0
    assert "builds:     no" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("environment", "python", "refusal"),
    [
        ("dependencies: [numpy]\n", "3.10", None),  # no pin: BINDER_PYTHON_VERSION, not the base image's
        ("dependencies: [python=3.12, numpy]\n", "3.12", None),  # its own Python, not the base image's
        ("dependencies: [python=3.7, numpy]\n", "3.7", "asks for Python 3.7; the Jupyter server runs on"),
    ],
)
def test_a_conda_environment_on_docker_brings_its_own_python(tmp_path, capsys, backend, environment, python, refusal):
    backend("docker")
    plan = plan_json(checkout(tmp_path, {"environment.yml": environment}), capsys)
    assert (plan["kind"], plan["python"]) == ("conda", python)
    assert (plan["refusal"] is None) if refusal is None else (refusal in plan["refusal"]), plan["refusal"]
