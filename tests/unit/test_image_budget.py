"""The image store's budget: which images go (least recently launched, none in use, just enough), the launch
records it orders them by (with an injected clock), and how an image folder is sized."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from binder_actors.config import BinderConfig
from binder_actors.image_budget import (
    GB,
    LaunchRecords,
    choose_removals,
    describe,
    expected_size,
    launch_records,
    prune,
    removal_order,
)
from binder_actors.models import PruneReport
from binder_actors.registries import StoredImage
from binder_actors.registries.local import LocalImage, LocalImageStore, folder_bytes

MB = 10**6
# Built at t=10, 20, 30, 40; each 100 MB.
IMAGES = [StoredImage(name, 100 * MB, built) for name, built in (("a", 10.0), ("b", 20.0), ("c", 30.0), ("d", 40.0))]


@pytest.mark.parametrize(
    ("last_launched", "expected"),
    [
        ({}, ["a", "b", "c", "d"]),  # never launched: oldest build first
        ({"a": 100.0}, ["b", "c", "d", "a"]),  # a launch makes an image the most recent
        ({"a": 100.0, "b": 50.0}, ["c", "d", "b", "a"]),  # an old build launched lately outlives newer builds
        ({"d": 5.0}, ["d", "a", "b", "c"]),  # a record older than the builds (launched, then rebuilt elsewhere)
        ({"a": 30.0, "c": 30.0}, ["b", "a", "c", "d"]),  # a tie goes by name, so the order is stable
    ],
)
def test_removal_order_is_least_recently_launched_first(last_launched: dict[str, float], expected: list[str]) -> None:
    assert [stored.image for stored in removal_order(IMAGES, last_launched)] == expected


@pytest.mark.parametrize(
    ("budget", "room_for", "last_launched", "in_use", "expected"),
    [
        (500 * MB, 100 * MB, {}, set(), []),  # 400 + 100 fits exactly
        (450 * MB, 100 * MB, {}, set(), ["a"]),  # 50 MB over: one image is enough
        (450 * MB, 0, {}, set(), []),  # no room asked for: 400 fits
        (250 * MB, 100 * MB, {}, set(), ["a", "b", "c"]),  # 250 over: three go, never more than needed
        (450 * MB, 100 * MB, {"a": 100.0}, set(), ["b"]),  # a was launched lately: the next oldest goes
        (450 * MB, 100 * MB, {}, {"a"}, ["b"]),  # a runs in a session: it is skipped, not waited for
        (250 * MB, 100 * MB, {}, {"a", "c"}, ["b", "d"]),  # every image not in use, and no more
        (50 * MB, 100 * MB, {}, {"a", "b", "c", "d"}, []),  # all in use: nothing goes, whatever the budget
        (0, 100 * MB, {}, set(), []),  # 0: no budget
    ],
)
def test_choose_removals_frees_just_enough_sparing_images_in_use(
    budget: int, room_for: int, last_launched: dict[str, float], in_use: set[str], expected: list[str]
) -> None:
    chosen = choose_removals(IMAGES, last_launched, in_use, budget, room_for)
    assert [stored.image for stored in chosen] == expected


def test_choose_removals_counts_each_image_by_its_own_size() -> None:
    images = [StoredImage("big", 900 * MB, 1.0), StoredImage("small", 10 * MB, 2.0), StoredImage("new", 10 * MB, 3.0)]
    # 920 MB in a 1 GB budget with 100 MB asked: the one big image, the oldest, frees enough.
    assert [s.image for s in choose_removals(images, {}, set(), GB, 100 * MB)] == ["big"]
    # The big one in use: the small ones cannot make enough room, and all of them go.
    assert [s.image for s in choose_removals(images, {}, {"big"}, GB, 100 * MB)] == ["small", "new"]


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [([], 0), ([100], 100), ([100, 200], 150), ([1, 2, 4], 2)],
    ids=["empty", "one", "two", "floor"],
)
def test_expected_size_is_the_mean_image(sizes: list[int], expected: int) -> None:
    assert expected_size([StoredImage(str(i), size, 0.0) for i, size in enumerate(sizes)]) == expected


def test_launch_records_keep_the_last_launch_of_each_image(tmp_path: Path) -> None:
    now = [1000.0]
    records = LaunchRecords(tmp_path / "launched", clock=lambda: now[0])
    assert records.read() == {}  # no folder yet
    image = "registry.example.org:5000/binder-gh-org-repo-abc123:0123abcd"  # slashes and colons in file names
    records.record(image)
    now[0] = 2000.0
    records.record("other:1")
    now[0] = 3000.0
    records.record(image)
    assert records.read() == {image: 3000.0, "other:1": 2000.0}
    records.forget("other:1")
    records.forget("never-recorded:1")
    assert records.read() == {image: 3000.0}


def test_launch_records_drop_images_no_longer_stored_and_ignore_torn_files(tmp_path: Path) -> None:
    records = LaunchRecords(tmp_path, clock=lambda: 5.0)
    for image in ("kept:1", "gone:1", "gone:2"):
        records.record(image)
    (tmp_path / "torn%3A1").write_text("")  # a crash between create and write
    (tmp_path / "x%3A1.partial").write_text("5.0")  # a crash between write and rename
    records.keep_only(["kept:1", "torn:1"])
    assert records.read() == {"kept:1": 5.0}


@pytest.mark.parametrize(
    ("settings", "recorded"),
    [
        ({}, False),  # no budget: nothing to order
        ({"image_store_max_gb": 1.5}, True),
        ({"image_store_max_gb": 1.5, "builder": "docker"}, True),
        ({"builder": "kubernetes", "registry": "docker", "image_store_max_gb": 1.0}, True),
    ],
)
def test_launches_are_recorded_only_with_a_budget(tmp_path: Path, settings: dict, recorded: bool) -> None:
    records = launch_records(BinderConfig(data_dir=tmp_path, **settings))
    assert (records is not None) == recorded
    if records is not None:
        assert records.root == tmp_path / "launched"


def test_folder_bytes_counts_what_removing_the_folder_frees(tmp_path: Path) -> None:
    image, cache = tmp_path / "image", tmp_path / "cache"
    (image / "env").mkdir(parents=True)
    cache.mkdir()
    (image / "env" / "own.bin").write_bytes(b"x" * 200_000)
    (image / "env" / "twice.bin").write_bytes(b"y" * 100_000)
    os.link(image / "env" / "twice.bin", image / "env" / "twice-again.bin")  # both links inside: once
    (cache / "shared.bin").write_bytes(b"z" * 300_000)
    os.link(cache / "shared.bin", image / "env" / "from-cache.bin")  # the cache keeps it: not counted
    (image / "env" / "link").symlink_to(cache / "shared.bin")  # not followed
    size = folder_bytes(image)
    blocks = (image / "env" / "own.bin").stat().st_blocks * 512 + (image / "env" / "twice.bin").stat().st_blocks * 512
    assert blocks <= size < blocks + 64 * 1024  # plus the folders and the symlink themselves
    assert size < blocks + 300_000


def test_local_store_lists_sizes_and_removes_images(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "images")
    assert store.stored_images() == []
    for name in ("first:1", "second:1"):
        path = store.path_for(name)
        (path / "env").mkdir(parents=True)
        (path / "env" / "data").write_bytes(b"x" * 50_000)
        store.record(
            LocalImage(image=name, path=path, repo_url="r", resolved_ref="1", python_version="3.10", stack_dir=path)
        )
    store.path_for("building:1").mkdir()  # no marker: a build in progress is not an image
    listed = store.stored_images()
    assert [s.image for s in listed] == ["first:1", "second:1"]
    assert all(s.size >= 50_000 and s.built_at > 0 for s in listed)
    store.remove_image("first:1")
    assert store.list_images() == ["second:1"]
    assert not store.path_for("first:1").exists()
    store.remove_image("first:1")  # already gone: nothing to do


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (PruneReport(), "No budget is set (BINDER_IMAGE_STORE_MAX_GB is 0): nothing removed.\n"),
        (
            PruneReport(
                dry_run=True, removed=["a:1", "b:1"], freed_bytes=250 * MB, store_bytes=2 * GB, budget_bytes=3 * GB
            ),
            "would remove 2 image(s), 250.0 MB; the store would then hold 2.000 GB of a 3.000 GB budget\n"
            "  a:1\n  b:1\n",
        ),
        (
            PruneReport(removed=[], store_bytes=10 * MB, budget_bytes=GB, in_use=["c:1"]),
            "removed 0 image(s), 0.0 MB; the store now holds 10.0 MB of a 1.000 GB budget (1 image(s) in use kept)\n",
        ),
    ],
    ids=["no-budget", "dry-run", "nothing-to-do"],
)
def test_prune_report_says_what_went_and_how_much(report: PruneReport, expected: str) -> None:
    assert describe(report) == expected


def test_prune_on_a_local_store_dry_run_removes_nothing_then_removes_the_oldest_unused(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "images")
    for name in ("a:1", "b:1", "c:1"):
        path = store.path_for(name)
        (path / "env").mkdir(parents=True)
        (path / "env" / "data").write_bytes(b"x" * 100_000)
        store.record(
            LocalImage(image=name, path=path, repo_url="r", resolved_ref="1", python_version="3.10", stack_dir=path)
        )
    clock = [100.0]
    records = LaunchRecords(tmp_path / "launched", clock=lambda: clock[0])
    records.record("a:1")  # a: launched first, and still running
    clock[0] = 200.0
    records.record("b:1")  # b: launched later, stopped since
    clock[0] = 300.0
    records.record("c:1")
    records.record("removed-by-hand:1")  # an image no longer in the store
    sizes = {stored.image: stored.size for stored in store.stored_images()}
    budget = sum(sizes.values()) + sizes["a:1"] // 2  # room for half of one more image: one must go

    planned = asyncio.run(prune(store, records, {"a:1"}, budget, dry_run=True))
    assert (planned.removed, planned.freed_bytes, planned.in_use) == (["b:1"], sizes["b:1"], ["a:1"])
    assert store.list_images() == ["a:1", "b:1", "c:1"]

    done = asyncio.run(prune(store, records, {"a:1"}, budget))
    assert (done.removed, done.freed_bytes, done.dry_run) == (["b:1"], sizes["b:1"], False)
    assert done.store_bytes == sizes["a:1"] + sizes["c:1"]
    assert store.list_images() == ["a:1", "c:1"]
    assert set(records.read()) == {"a:1", "c:1"}  # the removed image's record and the stray one are gone


class EngineLikeStore:
    """A PrunableStore in memory that, like dockerd, refuses to remove an image a container still holds."""

    def __init__(self, images: list[StoredImage], held: set[str]) -> None:
        self.images = {stored.image: stored for stored in images}
        self.held = held

    def stored_images(self) -> list[StoredImage]:
        return list(self.images.values())

    def remove_image(self, image: str) -> None:
        if image in self.held:
            raise RuntimeError(f"conflict: unable to remove {image}: a container uses it")
        del self.images[image]


@pytest.mark.parametrize(
    ("held", "removed"),
    [
        (set(), ["a", "b", "c"]),
        ({"a"}, ["b", "c", "d"]),  # a refused: the choice is made again, d goes in its place
        ({"a", "b", "c", "d"}, []),  # every removal refused: nothing goes, and the pass ends
    ],
)
def test_prune_chooses_again_when_the_store_refuses_a_removal(
    tmp_path: Path, held: set[str], removed: list[str]
) -> None:
    store = EngineLikeStore(IMAGES, held)
    report = asyncio.run(prune(store, LaunchRecords(tmp_path), set(), 250 * MB))  # 400 + 100 room: 250 over
    assert report.removed == removed
    assert report.freed_bytes == 100 * MB * len(removed)
    assert sorted(store.images) == sorted({"a", "b", "c", "d"} - set(removed))
