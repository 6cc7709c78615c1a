"""R repositories on the docker builder, read as repo2docker's R build pack reads them: pure, no Docker needed."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from binder_actors.builders import UnsupportedRepository
from binder_actors.builders.detect import DOCKER_BUILDER, plan_build
from binder_actors.builders.dockerfile import make_dockerfile
from binder_actors.builders.rlang import cran_url, r_packages, rprofile_site

TODAY = datetime.date(2026, 12, 7)


def repo(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "version", "snapshot", "install_r", "description"),
    [
        ({"runtime.txt": "r-4.3-2023-06-01\n"}, "4.3", "2023-06-01", None, None),
        ({"runtime.txt": "r-2024-01-15", "install.R": ""}, None, "2024-01-15", "install.R", None),
        (
            {"binder/runtime.txt": "r-4.2.2-2024-01-15", "binder/install.R": ""},
            "4.2.2",
            "2024-01-15",
            "binder/install.R",
            None,
        ),
        # DESCRIPTION alone: the snapshot of two days ago, as repo2docker picks it.
        ({"DESCRIPTION": "Package: x\n", "install.R": ""}, None, "2026-12-05", "install.R", "DESCRIPTION"),
        ({"DESCRIPTION": "Package: x\n", "runtime.txt": "r-2024-01-15"}, None, "2024-01-15", None, "DESCRIPTION"),
    ],
)
def test_what_an_r_repository_asks_for(tmp_path, files, version, snapshot, install_r, description):
    root = repo(tmp_path, files)
    config_dir = root / "binder" if (root / "binder").is_dir() else root
    packages = r_packages(root, config_dir, TODAY)
    assert (packages.version, packages.snapshot.isoformat()) == (version, snapshot)
    assert packages.install_r == (root / install_r if install_r else None)
    assert packages.description == (root / description if description else None)


@pytest.mark.parametrize(
    ("runtime", "refused_with"),
    [
        ("r-2018-12-06", "there are none before 2018-12-07"),
        ("r-2024-02-30", "2024-02-30 is not a date"),
    ],
)
def test_snapshots_that_cannot_be_had_are_refused_naming_runtime_txt(tmp_path, runtime, refused_with):
    with pytest.raises(UnsupportedRepository, match=refused_with) as refused:
        plan_build(repo(tmp_path, {"runtime.txt": runtime}), "3.11", ("3.11",), DOCKER_BUILDER)
    assert str(refused.value).startswith("runtime.txt")


def test_the_cran_url_and_site_profile_of_a_snapshot():
    url = cran_url("https://packagemanager.posit.co/cran/__linux__/bookworm/{date}", datetime.date(2024, 1, 15))
    assert url == "https://packagemanager.posit.co/cran/__linux__/bookworm/2024-01-15"
    assert cran_url("https://cran.example.org/", datetime.date(2024, 1, 15)) == "https://cran.example.org/"
    assert 'options(repos = c(CRAN = "https://cran.example.org/"))' in rprofile_site("https://cran.example.org/")


def test_the_r_layer_is_shared_and_the_repositorys_steps_come_after_the_python_ones(tmp_path):
    files = {
        "runtime.txt": "r-4.1-2024-01-15",
        "install.R": "",
        "DESCRIPTION": "Package: x\n",
        "requirements.txt": "x\n",
        "postBuild": "echo",
    }
    plan = plan_build(repo(tmp_path, files), "3.11", ("3.11",), DOCKER_BUILDER)
    lines = make_dockerfile(plan, tmp_path, base_image="binder-base:bookworm", build_name="b").splitlines()
    r_layer = next(i for i, line in enumerate(lines) if "r-base-core r-cran-irkernel r-cran-remotes" in line)
    own = lines.index("LABEL binder-actors.building=b")
    assert r_layer < own  # built once, shared by every R image
    # Registered system-wide (as root): found by the server's Jupyter whether it runs on the venv or on conda.
    assert lines[r_layer + 2 : r_layer + 4] == [
        'RUN ["env", "HOME=/root", "R", "--quiet", "--no-save", "-e", "IRkernel::installspec(user = FALSE)"]',
        "USER jovyan",
    ]
    steps = [
        next(i for i, line in enumerate(lines) if fragment in line)
        for fragment in (
            "COPY Rprofile.site /etc/R/Rprofile.site",
            '"-r", "requirements.txt"',
            "asks for R ",
            '"Rscript", "install.R"',
            "remotes::install_local",
            "postBuild",
        )
    ]
    assert steps == sorted(steps) and steps[0] > own


def test_with_a_conda_environment_r_comes_after_the_environments_stack(tmp_path):
    files = {"runtime.txt": "r-2024-01-15", "install.R": "", "environment.yml": "dependencies: [python=3.11, numpy]\n"}
    plan = plan_build(repo(tmp_path, files), "3.11", ("3.11",), DOCKER_BUILDER)
    assert plan.conda is not None and plan.r is not None and plan.kind == "r"
    lines = make_dockerfile(plan, tmp_path, base_image="binder-base:bookworm", build_name="b").splitlines()
    conda = lines.index("COPY --chown=1000:1000 conda/ /srv/conda/")
    r_layer = next(i for i, line in enumerate(lines) if "r-base-core" in line)
    assert conda < r_layer < lines.index("LABEL binder-actors.building=b")
