"""Build executors: turn a resolved ref into an image, streaming build events, behind one Protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest

Emit = Callable[[BinderEvent], Awaitable[None]]


def timeout_message(timeout: int) -> str:
    """What every builder says of a build stopped at its time limit."""
    return f"The build took longer than BINDER_BUILD_TIMEOUT={timeout}s and was stopped."


class UnsupportedRepository(Exception):
    """The repository asks for something this builder cannot do; the message says what and why."""


class BuildFailed(Exception):
    """A build that ended without an image; the message is for the user, the tail is its log."""

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail or []


class BuildExecutor(Protocol):
    async def build(self, request: BuildRequest, emit: Emit) -> None:
        """Build the image or raise BuildFailed; leaves nothing behind on failure."""
        ...

    def cleanup_incomplete(self) -> list[str]:
        """Remove what builds interrupted by a restart left; returns what was removed."""
        ...


@runtime_checkable
class RecoverableExecutor(Protocol):
    """An executor whose builds outlive the scheduler that started them (Kubernetes build pods).

    The local and Docker builders' builds die with their scheduler (cleanup_incomplete removes what
    they left), so they have nothing to recover and do not implement this.
    """

    def recover(self) -> list[BuildRequest]:
        """The builds a previous scheduler started that are still running.

        A restarted scheduler follows each to its end with `build`, which joins the running build
        instead of starting another.
        """
        ...


def _kubernetes_executor(config: BinderConfig) -> BuildExecutor:
    from binder_actors.builders.kubernetes import KubernetesBuildExecutor  # the client costs ~1 s to import

    return KubernetesBuildExecutor(config)


def _docker_executor(config: BinderConfig) -> BuildExecutor:
    from binder_actors.builders.docker import DockerBuildExecutor  # the docker SDK only where it is used

    return DockerBuildExecutor(config)


def make_executor(config: BinderConfig) -> BuildExecutor:
    """The executor the config names (BINDER_BUILDER)."""
    from binder_actors.builders.local import LocalBuildExecutor
    from binder_actors.registries.local import LocalImageStore

    executors: dict[str, Callable[[], BuildExecutor]] = {
        "local": lambda: LocalBuildExecutor(config, LocalImageStore(config.images_dir)),
        "kubernetes": lambda: _kubernetes_executor(config),
        "docker": lambda: _docker_executor(config),
    }
    return executors[config.builder]()
