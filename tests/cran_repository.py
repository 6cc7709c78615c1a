"""A CRAN-like repository for the docker builder's R tests: `src/contrib/PACKAGES` and source packages that
the test session builds with `R CMD build`, served over HTTP where build containers reach it (the docker
bridge's gateway) under `/cran/<snapshot date>/`, as dated snapshot services serve CRAN.

Any date serves the same packages; the paths asked for are recorded, so a test sees which snapshot was used.
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker

from serve_app.embedded import free_port


class CranRepository:
    """Serves `root/src/contrib` at http://<host>:<port>/cran/<any date>/src/contrib/."""

    def __init__(self, root: Path, host: str) -> None:
        self.root = root
        self.contrib = root / "src" / "contrib"
        self.contrib.mkdir(parents=True, exist_ok=True)
        self.requested: list[str] = []
        repository = self

        class Handler(SimpleHTTPRequestHandler):
            def translate_path(self, path: str) -> str:
                parts = path.split("?", 1)[0].split("/")  # "", "cran", "<date>", "src", "contrib", file
                repository.requested.append(path)
                if len(parts) < 4 or parts[1] != "cran":
                    return str(repository.root / "missing")
                return super().translate_path("/" + "/".join(parts[3:]))

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, free_port()), lambda *a: Handler(*a, directory=str(root)))
        self.url = f"http://{host}:{self._server.server_address[1]}/cran/{{date}}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add_package(self, source: Path) -> str:
        """`R CMD build` the package folder `source` into the repository and index it; its tarball's name."""
        built = subprocess.run(
            ["R", "CMD", "build", "--no-build-vignettes", "--no-manual", str(source)],
            cwd=self.contrib,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert built.returncode == 0, built.stdout + built.stderr
        index = subprocess.run(
            ["Rscript", "-e", f"tools::write_PACKAGES('{self.contrib}', type = 'source')"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert index.returncode == 0, index.stdout + index.stderr
        (tarball,) = self.contrib.glob(f"{source.name}_*.tar.gz")
        return tarball.name

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def bridge_gateway(engine: docker.DockerClient) -> str:
    """The address build containers on docker's default bridge reach the host at (172.17.0.1 usually): its
    gateway, which dockerd lists only when it was configured, else the subnet's first address (docker0's)."""
    ipam = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return str(ipam.get("Gateway") or next(ipaddress.ip_network(ipam["Subnet"]).hosts()))
