"""R repositories as repo2docker's R build pack reads them, for the docker builder: pure, table-tested.

A repository is an R one when its runtime.txt says `r-<YYYY-MM-DD>` or `r-<version>-<YYYY-MM-DD>`, or
when a `DESCRIPTION` sits at the root of a repository without a binder folder (then the snapshot is
two days before today, as repo2docker picks it). R comes from the base image's distribution (Debian's
r-base-core), with IRkernel registered for the server's Jupyter; `install.R` runs, and a root
`DESCRIPTION` is installed with remotes, against the CRAN snapshot of that date (BINDER_CRAN_URL).
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from pathlib import Path

from binder_actors.builders import UnsupportedRepository

# Debian's R, its Jupyter kernel and remotes (for DESCRIPTION): one shared layer for every R image.
R_PACKAGES = ("r-base-core", "r-cran-irkernel", "r-cran-remotes")
R_LIBS = "/srv/rlibs"  # the site library the notebook user installs into, as repo2docker's ${APP_BASE}/rlibs
RPROFILE_CONTEXT = "Rprofile.site"  # the build context's file holding the CRAN snapshot of the build
RPROFILE_SITE = "/etc/R/Rprofile.site"  # Debian's site profile, read by every R the image starts
# repo2docker refuses snapshots before this date: Posit's package manager has none older that works.
FIRST_SNAPSHOT = datetime.date(2018, 12, 7)
DESCRIPTION_SNAPSHOT_LAG = datetime.timedelta(days=2)
_RUNTIME_RE = re.compile(r"^r-(?:(?P<version>\d+(?:\.\d+)*)-)?(?P<date>\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class RPackages:
    """What an R repository asks for: the R version (None: any), the CRAN snapshot, install.R, DESCRIPTION."""

    version: str | None
    snapshot: datetime.date
    install_r: Path | None
    description: Path | None
    source: str  # what made it an R repository: runtime.txt or DESCRIPTION, relative to the repository


def r_packages(repo_dir: Path, config_dir: Path, today: datetime.date | None = None) -> RPackages:
    """The R build pack's reading of a repository known to be an R one (detect.buildpack_kind says "r")."""
    runtime = config_dir / "runtime.txt"
    text = runtime.read_text().strip() if runtime.is_file() else ""
    match = _RUNTIME_RE.match(text)
    description = repo_dir / "DESCRIPTION" if config_dir == repo_dir and (repo_dir / "DESCRIPTION").is_file() else None
    install_r = config_dir / "install.R"
    if match:
        source = runtime.relative_to(repo_dir).as_posix()
        try:
            snapshot = datetime.date.fromisoformat(match["date"])
        except ValueError:
            raise UnsupportedRepository(f"{source} says {text!r}: {match['date']} is not a date.") from None
        if snapshot < FIRST_SNAPSHOT:
            raise UnsupportedRepository(
                f"{source} asks for the CRAN snapshot of {snapshot}; there are none before {FIRST_SNAPSHOT} "
                "(repo2docker refuses it too): use a newer date."
            )
        version = match["version"]
    else:
        source, version = "DESCRIPTION", None
        snapshot = (today or datetime.date.today()) - DESCRIPTION_SNAPSHOT_LAG
    return RPackages(version, snapshot, install_r if install_r.is_file() else None, description, source)


def cran_url(template: str, snapshot: datetime.date) -> str:
    """BINDER_CRAN_URL with `{date}` replaced by the snapshot's YYYY-MM-DD."""
    return template.replace("{date}", snapshot.isoformat())


def rprofile_site(url: str) -> str:
    """Debian's site profile with the CRAN snapshot as the repository every install uses.

    The user agent names R's version and platform, which is how Posit's package manager decides to serve
    binary packages for the distribution instead of sources (a plain CRAN mirror ignores it).
    """
    return (
        "# Written by binder-actors: the CRAN snapshot of this repository (BINDER_CRAN_URL).\n"
        f"options(repos = c(CRAN = {json.dumps(url)}))\n"
        'options(HTTPUserAgent = sprintf("R/%s R (%s)", getRversion(), paste(getRversion(), '
        'R.version["platform"], R.version["arch"], R.version["os"])))\n'
    )


def shared_r_lines() -> list[str]:
    """The R layer every R image of the same stack shares (docker caches it once): R, IRkernel registered
    for the server's Jupyter, and the notebook user's site library. Runs as root, ends as the notebook user."""
    return [
        "USER root",
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        f"{' '.join(R_PACKAGES)} && rm -rf /var/lib/apt/lists/* && install -d -o 1000 -g 1000 {R_LIBS}",
        f"ENV R_LIBS_USER={R_LIBS}",
        # Into /usr/local/share/jupyter, which every Jupyter looks in whatever Python runs the server (the
        # venv's, or a conda environment's): notebooks get an R kernel. With root's HOME: jupyter makes its
        # folders under HOME, and root-owned ones in the user's home would stop the server from starting.
        "RUN "
        + json.dumps(["env", "HOME=/root", "R", "--quiet", "--no-save", "-e", "IRkernel::installspec(user = FALSE)"]),
        "USER jovyan",
    ]


def r_build_lines(packages: RPackages, repo_dir: Path) -> list[str]:
    """The build's own R steps, as the notebook user in the repository's folder: the R version check
    (the image has Debian's R whatever runtime.txt asks), install.R, then DESCRIPTION's package."""
    lines = []
    if packages.version:
        check = (
            f"v <- '{packages.version}'; r <- as.character(getRversion()); "
            "if (r != v && !startsWith(r, paste0(v, '.'))) "
            f"message('{packages.source} asks for R ', v, '; this image has Debian\\'s R ', r, ' (r-base-core)')"
        )
        lines.append("RUN " + json.dumps(["Rscript", "-e", check]))
    if packages.install_r:
        lines.append("RUN " + json.dumps(["Rscript", packages.install_r.relative_to(repo_dir).as_posix()]))
    if packages.description:
        install = "remotes::install_local(getwd(), upgrade = 'never')"
        lines.append("RUN " + json.dumps(["R", "--quiet", "--no-save", "-e", install]))
    return lines
