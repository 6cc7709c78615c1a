"""BINDER_BUILDER=docker with R repositories, against the real dockerd: Debian's R and IRkernel in the image,
install.R and a root DESCRIPTION installed from the CRAN snapshot of the repository's date, served by the
test session's CRAN-like repository (tests/cran_repository.py, packages built here with `R CMD build`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from binder_actors.models import BuildRequest
from tests.conda_channel import CONDA_REPO, ChannelServer
from tests.cran_repository import CranRepository
from tests.docker_stack import build_leftovers, resolved_ref
from tests.helpers import GitServer, git_spec, read_events, run_in_kernel

PACKAGE = "binderhello"
R_TIMEOUT = 180  # an R kernel's first start in a fresh container


def write_package(folder: Path, name: str, code: str, imports: str = "") -> Path:
    """A pure R source package: DESCRIPTION, NAMESPACE exporting every function, R/code.R."""
    folder.mkdir(parents=True)
    description = f"Package: {name}\nVersion: 0.1.0\nTitle: A Test Package\nDescription: Used by tests.\n"
    description += "Authors@R: person('Test', 'Author', email = 'test@example.org', role = c('aut', 'cre'))\n"
    description += "License: MIT\nEncoding: UTF-8\n" + (f"Imports: {imports}\n" if imports else "")
    (folder / "DESCRIPTION").write_text(description)
    (folder / "NAMESPACE").write_text('exportPattern("^[a-z]")\n')
    (folder / "R").mkdir()
    (folder / "R" / "code.R").write_text(code)
    return folder


@pytest.fixture(scope="module")
def hello_package(cran: CranRepository, tmp_path_factory) -> str:
    """binderhello 0.1.0 in the stack's CRAN; the name of its tarball."""
    source = write_package(
        tmp_path_factory.mktemp("r-source") / PACKAGE, PACKAGE, 'hello <- function() "hello from a CRAN snapshot"\n'
    )
    return cran.add_package(source)


def launch(docker_stack, git_server: GitServer, name: str, files: dict[str, str]) -> tuple[list[dict], str]:
    sha = git_server.add(name, files)
    return read_events(docker_stack.url, f"build/git/{git_spec(git_server.url(name), 'main')}"), sha


def test_runtime_and_install_r_launch_with_an_r_kernel_loading_the_snapshots_package(
    docker_stack, git_server: GitServer, engine, cran: CranRepository, hello_package: str
):
    files = {
        "runtime.txt": "r-4.1-2024-01-15\n",
        "install.R": f'install.packages("{PACKAGE}")\n',
        "requirements.txt": "tabulate==0.9.0\n",  # an R repository is a Python one too, as repo2docker's
    }
    events, _ = launch(docker_stack, git_server, "docker-r-install", files)
    ready = events[-1]
    assert ready["phase"] == "ready", events[-3:]
    messages = "\n".join(event.get("message", "") for event in events)
    # Debian's R is what the image gets, and the build says so.
    assert "runtime.txt asks for R 4.1; this image has Debian's R 4.2" in messages
    assert f"/cran/2024-01-15/src/contrib/{hello_package}" in cran.requested

    code = f'library({PACKAGE}); cat(hello(), "|", .libPaths()[1], "|", R.version$major, sep = "")'
    output = run_in_kernel(ready["url"], ready["token"], code, timeout=R_TIMEOUT, kernel_name="ir")
    assert output.split("|") == ["hello from a CRAN snapshot", "/srv/rlibs", "4"]
    python = "import tabulate; print(tabulate.__version__)"
    assert run_in_kernel(ready["url"], ready["token"], python).strip() == "0.9.0"


def test_a_root_description_installs_the_repository_as_a_package_with_its_imports(
    docker_stack, git_server: GitServer, tmp_path, hello_package: str
):
    write_package(tmp_path / "pkg", "binderdesc", f"shout <- function() toupper({PACKAGE}::hello())\n", PACKAGE)
    files = {str(p.relative_to(tmp_path / "pkg")): p.read_text() for p in (tmp_path / "pkg").rglob("*") if p.is_file()}
    events, _ = launch(docker_stack, git_server, "docker-r-description", files)
    ready = events[-1]
    assert ready["phase"] == "ready", events[-3:]
    output = run_in_kernel(ready["url"], ready["token"], "cat(binderdesc::shout())", R_TIMEOUT, kernel_name="ir")
    assert output == "HELLO FROM A CRAN SNAPSHOT"


def test_a_failing_install_r_fails_the_build_with_its_output_and_leaves_nothing(
    docker_stack, git_server: GitServer, engine
):
    install = textwrap.dedent(
        """
        message("installing what the notebooks need")
        library(binderactorsnosuchpackage)
        """
    )
    events, sha = launch(
        docker_stack, git_server, "docker-r-fails", {"runtime.txt": "r-2024-01-15\n", "install.R": install}
    )
    failed = events[-1]
    assert failed["phase"] == "failed", events[-3:]
    assert "docker build failed" in failed["message"] and "Rscript" in failed["message"], failed["message"]
    assert "there is no package called" in failed["message"], failed["message"]
    assert "binderactorsnosuchpackage" in failed["message"]
    build = BuildRequest.for_ref(resolved_ref(git_server.url("docker-r-fails"), sha))
    assert build_leftovers(engine, build.build_name) == []
    assert not engine.images.list(name=build.image)


def test_r_beside_a_conda_environment_gives_both_kernels_their_packages(
    docker_stack, git_server: GitServer, conda_channel: ChannelServer | None, hello_package: str
):
    assert conda_channel is not None, "the test conda channel needs this machine's pyenv CPython 3.10"
    files = {
        **CONDA_REPO,
        "binder/runtime.txt": "r-2024-01-15\n",
        "binder/install.R": f'install.packages("{PACKAGE}")\n',
    }
    events, _ = launch(docker_stack, git_server, "docker-r-conda", files)
    ready = events[-1]
    assert ready["phase"] == "ready", events[-3:]
    code = f'library({PACKAGE}); cat(hello(), "|", .libPaths()[1], sep = "")'
    output = run_in_kernel(ready["url"], ready["token"], code, timeout=R_TIMEOUT, kernel_name="ir")
    assert output.split("|") == ["hello from a CRAN snapshot", "/srv/rlibs"]
    python = "import sys, condalib, tabulate; print(sys.executable, condalib.ANSWER, tabulate.__version__)"
    assert run_in_kernel(ready["url"], ready["token"], python).split() == ["/srv/conda/bin/python", "42", "0.9.0"]
