"""/versions: what builds the images and which versions run, in BinderHub's {"builder_info", "binderhub"} shape."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from binder_actors.config import BinderConfig


def service_version() -> str:
    try:
        return version("binder-actors")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def builder_info(config: BinderConfig, hub_version: str | None) -> dict[str, Any]:
    """BinderHub names its repo2docker image here; we name the build backend (and its image when it has one)."""
    info: dict[str, Any] = {"builder": config.builder, "registry": config.registry.kind, "jupyterhub": hub_version}
    if config.builder == "kubernetes":
        info["build_image"] = config.kubernetes.image
    return info


def versions(config: BinderConfig, hub_version: str | None) -> dict[str, Any]:
    """`binderhub` holds binder-actors' version: the service a BinderHub client talks to."""
    return {"builder_info": builder_info(config, hub_version), "binderhub": service_version()}
