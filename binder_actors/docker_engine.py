"""The Docker Engine as the docker backend sees it: one client, the labels it marks things with, the session network.

The builder, the registry and the embedded hub's setup share these, so they agree on names and labels.
"""

from __future__ import annotations

import docker
from docker.errors import DockerException, NotFound

# Every image the docker builder makes carries these; `images()` of the registry lists by the first.
IMAGE_LABEL = "binder-actors.image"
BUILD_LABEL = "binder-actors.build"
REPO_LABEL = "binder-actors.repo"
REF_LABEL = "binder-actors.ref"
# Set to the build's name while its steps run, and to "" at the end of the Dockerfile: containers of
# build steps (and images of unfinished builds) carry a value, session containers inherit the empty one.
BUILDING_LABEL = "binder-actors.building"
# The value of BUILDING_LABEL while the Jupyter server stack layer is built: that layer is shared by
# every image, so its label must not name one build (or docker would build it once per image).
SHARED_STEP = "shared"

SETUP_HINT = "start dockerd (as root: cluster/docker/setup-docker.sh sets up Docker and the base image)"


class DockerUnavailable(Exception):
    """The Docker Engine did not answer; the message says how to start it."""


def engine_client(timeout: float = 60.0) -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names (the local socket by default), checked to answer."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as error:
        raise DockerUnavailable(f"The Docker Engine is not reachable ({error}); {SETUP_HINT}.") from None
    return client


def ensure_network(client: docker.DockerClient, name: str) -> str:
    """The gateway address of the bridge network `name`, created if missing: where sessions reach the host."""
    try:
        network = client.networks.get(name)
    except NotFound:
        network = client.networks.create(name, driver="bridge", labels={"binder-actors.network": "sessions"})
        network.reload()
    configs = (network.attrs.get("IPAM") or {}).get("Config") or []
    gateway = next((c["Gateway"] for c in configs if c.get("Gateway") and ":" not in c["Gateway"]), None)
    if gateway is None:
        raise DockerUnavailable(f"The Docker network {name!r} has no IPv4 gateway; remove it and let it be recreated.")
    return str(gateway)
