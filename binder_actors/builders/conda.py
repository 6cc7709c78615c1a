"""The conda packages of an environment.yml, solved and installed with py-rattler (no conda binary), for
the local builder (into the image's folder) and the docker builder (into its build context).

Repodata and packages are cached under BINDER_DATA_DIR/conda for every build, so a second environment
with the same packages is linked from the cache instead of downloaded.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from pathlib import Path

import rattler
from rattler.exceptions import GatewayError, InstallerError, SolverError

from binder_actors.builders import BuildFailed, Emit
from binder_actors.builders.detect import CondaEnvironment
from binder_actors.config_groups import CondaSettings
from binder_actors.events import progress

log = logging.getLogger(__name__)


class _InstallProgress:
    """rattler's installer callbacks (called from its own threads) as `building` events, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
        self._loop = loop
        self._queue = queue
        self._names: dict[int, str] = {}
        self.downloaded: list[str] = []

    def _say(self, message: str) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, message)

    def on_populate_cache_start(self, operation: int, package_name: str) -> int:
        self._names[operation] = package_name
        return operation

    def on_download_start(self, cache_entry: int) -> int:
        name = self._names.get(cache_entry, "a package")
        self.downloaded.append(name)
        self._say(f"Downloading {name}")
        return cache_entry

    def on_link_start(self, operation: int, package_name: str) -> int:
        return operation


def channel_config(settings: CondaSettings) -> rattler.ChannelConfig:
    alias = settings.channel_alias or "https://conda.anaconda.org/"
    return rattler.ChannelConfig(channel_alias=alias if alias.endswith("/") else alias + "/")


def channels_of(environment: CondaEnvironment, settings: CondaSettings) -> list[rattler.Channel]:
    """The file's channels, else the configured ones; a name means a folder under the channel alias."""
    config = channel_config(settings)
    return [rattler.Channel(name, config) for name in environment.channels or settings.channels]


async def solve_environment(
    environment: CondaEnvironment, settings: CondaSettings, cache_dir: Path, emit: Emit
) -> list[rattler.RepoDataRecord]:
    """The packages `environment` resolves to (repodata cached under `cache_dir`), with a Python among them."""
    channels = channels_of(environment, settings)
    urls = ", ".join(str(channel.base_url) for channel in channels)
    await emit(progress("building", f"Solving the conda packages of {environment.source} from {urls}"))
    try:
        records = await asyncio.wait_for(
            rattler.solve(
                channels,
                list(environment.specs),
                gateway=rattler.Gateway(cache_dir=cache_dir / "repodata"),
                platforms=[rattler.Subdir.current(), rattler.Subdir("noarch")],
                virtual_packages=await asyncio.to_thread(rattler.VirtualPackage.detect),
                timeout=datetime.timedelta(seconds=settings.solve_timeout),
            ),
            settings.solve_timeout,
        )
    except asyncio.TimeoutError:
        raise BuildFailed(
            f"Solving {environment.source} took longer than BINDER_CONDA_SOLVE_TIMEOUT={settings.solve_timeout}s."
        ) from None
    except GatewayError as error:
        raise BuildFailed(
            f"The conda channels of {environment.source} could not be read ({urls}): {error}\n"
            "Check the file's channels, or BINDER_CONDA_CHANNEL_ALIAS if a mirror serves them."
        ) from None
    except SolverError as error:
        raise BuildFailed(
            f"The conda packages of {environment.source} cannot be installed together: {error}\n"
            f"Change the versions or channels {environment.source} asks for."
        ) from None
    python_of(records, environment.source)
    return records


def python_of(records: list[rattler.RepoDataRecord], source: str) -> str:
    """The X.Y of the Python among solved `records`."""
    python = next((r for r in records if str(r.name.normalized) == "python"), None)
    if python is None:
        raise BuildFailed(f"The solved environment of {source} has no python package.")
    return ".".join(str(python.version).split(".")[:2])


async def install_records(
    records: list[rattler.RepoDataRecord],
    source: str,
    prefix: Path,
    cache_dir: Path,
    emit: Emit,
    *,
    runs_at: str | None = None,
) -> None:
    """Install solved `records` into `prefix` through the package cache under `cache_dir`.

    `runs_at`: the prefix the environment will run from when that is not `prefix` (an image's folder):
    rattler writes it into the files that embed their prefix (scripts' shebangs, text placeholders).
    """
    listed = ", ".join(f"{r.name.normalized} {r.version}" for r in records)
    await emit(progress("building", f"Installing {len(records)} conda packages: {listed}"))

    queue: asyncio.Queue[str | None] = asyncio.Queue()
    reporter = _InstallProgress(asyncio.get_running_loop(), queue)

    async def forward() -> None:
        while (message := await queue.get()) is not None:
            await emit(progress("building", message))

    forwarding = asyncio.create_task(forward())
    try:
        await rattler.install(
            records,
            prefix,
            cache_dir=cache_dir / "pkgs",
            show_progress=False,
            reporter=reporter,
            execute_link_scripts=False,
            alternative_target_prefix=runs_at,
        )
    except (GatewayError, InstallerError) as error:
        raise BuildFailed(f"Installing the conda packages of {source} failed: {error}") from None
    finally:
        queue.put_nowait(None)
        await forwarding
    cached = len(records) - len(reporter.downloaded)
    await emit(
        progress("building", f"Installed {len(records)} conda packages ({cached} from the cache under {cache_dir})")
    )
    log.info("conda environment installed prefix=%s packages=%d cached=%d", prefix, len(records), cached)


async def install_environment(
    environment: CondaEnvironment, prefix: Path, settings: CondaSettings, cache_dir: Path, emit: Emit
) -> str:
    """Solve `environment` and install it into `prefix`; the X.Y of the Python it installed."""
    records = await solve_environment(environment, settings, cache_dir, emit)
    await install_records(records, environment.source, prefix, cache_dir, emit)
    return python_of(records, environment.source)
