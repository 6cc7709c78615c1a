"""The image store's disk budget (BINDER_IMAGE_STORE_MAX_GB): which images go when the store would pass it,
the least recently launched that no session runs first, and when each image was last launched.

The choice is pure (`choose_removals`); `prune` applies it to a store that can list and remove its images.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from urllib.parse import quote, unquote

from binder_actors.config import BinderConfig
from binder_actors.models import PruneReport
from binder_actors.registries import PrunableStore, StoredImage

log = logging.getLogger(__name__)

GB = 10**9


def budget_bytes(config: BinderConfig) -> int:
    """The budget in bytes; 0 is no budget."""
    return int(config.registry.store_max_gb * GB)


def removal_order(images: Iterable[StoredImage], last_launched: dict[str, float]) -> list[StoredImage]:
    """Least recently used first: an image's last launch, or its build for one never launched."""
    return sorted(images, key=lambda stored: (last_launched.get(stored.image, stored.built_at), stored.image))


def expected_size(images: Collection[StoredImage]) -> int:
    """What the next build will probably take: the mean size of the stored images (0 for an empty store)."""
    return sum(stored.size for stored in images) // len(images) if images else 0


def choose_removals(
    images: Collection[StoredImage],
    last_launched: dict[str, float],
    in_use: Collection[str],
    budget: int,
    room_for: int,
) -> list[StoredImage]:
    """The images to remove so that the store plus `room_for` bytes fits in `budget`, in removal order.

    Images in `in_use` are never chosen; when even removing every other one is not enough, all of
    those go (the build then proceeds, and a disk really full fails it cleanly).
    """
    if budget <= 0:
        return []
    excess = sum(stored.size for stored in images) + room_for - budget
    chosen = []
    for stored in removal_order(images, last_launched):
        if excess <= 0:
            break
        if stored.image in in_use:
            continue
        chosen.append(stored)
        excess -= stored.size
    return chosen


class LaunchRecords:
    """When each image was last launched: one file per image under a folder, holding the epoch seconds.

    A file per image, replaced atomically, so SessionManager and BuildScheduler never rewrite a shared
    index; records of images no longer stored are dropped by `keep_only`, so the folder stays bounded.
    """

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._clock = clock

    def record(self, image: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / quote(image, safe="")
        partial = target.with_name(target.name + ".partial")
        partial.write_text(repr(self._clock()))
        os.replace(partial, target)

    def read(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for entry in self.root.iterdir() if self.root.is_dir() else []:
            if entry.name.endswith(".partial"):
                continue
            try:
                found[unquote(entry.name)] = float(entry.read_text())
            except (OSError, ValueError):  # removed meanwhile, or a partial write of a crashed process
                continue
        return found

    def forget(self, image: str) -> None:
        (self.root / quote(image, safe="")).unlink(missing_ok=True)

    def keep_only(self, images: Collection[str]) -> None:
        for image in set(self.read()) - set(images):
            self.forget(image)


def launch_records(config: BinderConfig) -> LaunchRecords | None:
    """The launch records of a deployment with a budget on a store of this machine; None otherwise."""
    if not budget_bytes(config) or config.registry.kind not in ("local", "docker"):
        return None
    return LaunchRecords(config.data_dir / "launched")


async def prune(
    store: PrunableStore,
    records: LaunchRecords,
    in_use: Collection[str],
    budget: int,
    *,
    dry_run: bool = False,
) -> PruneReport:
    """Bring the store within `budget` with room for one more image of the usual size; say what went.

    An image the store refuses to remove (the engine still has a container of it) is kept, and the
    choice is made again without it, so the next least recently launched goes in its place.
    """
    images = await asyncio.to_thread(store.stored_images)
    if not dry_run:
        await asyncio.to_thread(records.keep_only, [stored.image for stored in images])
    launched = await asyncio.to_thread(records.read)
    room_for = expected_size(images)
    remaining, refused, removed = list(images), set(in_use), []
    while chosen := choose_removals(remaining, launched, refused, budget, room_for):
        refusals = len(refused)
        for stored in chosen:
            if not dry_run:
                try:
                    await asyncio.to_thread(store.remove_image, stored.image)
                except Exception as error:  # the store's refusal, said in a log line: the choice is made again
                    log.warning("could not remove image=%s error=%s", stored.image, error)
                    refused.add(stored.image)
                    continue
                await asyncio.to_thread(records.forget, stored.image)
                log.info("removed image=%s bytes=%d to keep the store within its budget", stored.image, stored.size)
            removed.append(stored)
            remaining.remove(stored)
        if len(refused) == refusals:  # every chosen image went (or, in a dry run, would): the store fits
            break
    total = sum(stored.size for stored in images)
    freed = sum(stored.size for stored in removed)
    return PruneReport(
        dry_run=dry_run,
        removed=[stored.image for stored in removed],
        freed_bytes=freed,
        store_bytes=total - freed,
        budget_bytes=budget,
        in_use=sorted(set(in_use) & {stored.image for stored in images}),
    )


def describe(report: PruneReport) -> str:
    """The report as `binder-actors prune` prints it."""
    if not report.budget_bytes:
        return "No budget is set (BINDER_IMAGE_STORE_MAX_GB is 0): nothing removed.\n"
    verb = "would remove" if report.dry_run else "removed"
    lines = [
        f"{verb} {len(report.removed)} image(s), {_size(report.freed_bytes)}; the store "
        f"{'would then hold' if report.dry_run else 'now holds'} "
        f"{_size(report.store_bytes)} of a {_size(report.budget_bytes)} budget"
        + (f" ({len(report.in_use)} image(s) in use kept)" if report.in_use else ""),
        *(f"  {image}" for image in report.removed),
    ]
    return "\n".join(lines) + "\n"


def _size(count: int) -> str:
    return f"{count / GB:.3f} GB" if count >= GB else f"{count / 10**6:.1f} MB"
