"""Unpacking a record's content safely: names that stay inside the checkout, a byte bound, and
repo2docker's layout rules (a single zip unpacked, a single top-level folder flattened).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from binder_actors.builders import BuildFailed

COPY_CHUNK = 1 << 20


class ContentTooBig(BuildFailed):
    """A record whose content (downloaded, or unpacked from an archive) passes BINDER_CONTENT_MAX_BYTES."""


class UnsafeArchive(BuildFailed):
    """An archive or a file name that would write outside the checkout."""


class ByteBudget:
    """How many more bytes a fetch may write; `take` fails with ContentTooBig past the bound."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.used = 0

    def take(self, count: int) -> None:
        self.check(count)
        self.used += count

    def check(self, count: int) -> None:
        """Fail now if `count` more bytes would not fit (a download's declared length)."""
        if self.used + count > self.limit:
            raise ContentTooBig(
                f"{self.what} is larger than BINDER_CONTENT_MAX_BYTES={self.limit} bytes; "
                "raise that setting to build it, or launch a smaller record."
            )


def safe_path(root: Path, name: str, what: str) -> Path:
    """`root/name` for a relative name that stays under `root` (no `..`, no absolute path, no NUL)."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if not name or "\x00" in name or posix.is_absolute() or ".." in posix.parts or not posix.parts:
        raise UnsafeArchive(f"{what} names {name!r}, a path outside the repository; refusing to write it.")
    return root.joinpath(*posix.parts)


def is_zip(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def unpack_zip(archive: Path, dest: Path, limit: int) -> None:
    """Extract `archive` into `dest`; every name is checked before anything is written.

    The bound holds whatever the headers claim: zipfile stops reading a member at its declared size.
    """
    budget = ByteBudget(limit, f"The archive {archive.name} unpacked")
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        targets = [safe_path(dest, member.filename, f"The archive {archive.name}") for member in members]
        budget.take(sum(member.file_size for member in members))
        for member, target in zip(members, targets, strict=True):
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # A symlink's entry is written as a plain file holding its target: it can point nowhere.
            with bundle.open(member) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, COPY_CHUNK)


def unpack_tar(archive: Path, dest: Path, limit: int) -> None:
    """Extract a (compressed) tar into `dest`, refusing escaping names, escaping links and devices."""
    what = f"The archive {archive.name}"
    budget = ByteBudget(limit, f"{what} unpacked")
    with tarfile.open(archive) as bundle:
        members = bundle.getmembers()
        for member in members:
            target = safe_path(dest, member.name, what)
            if member.isdev() or member.isfifo():
                raise UnsafeArchive(f"{what} holds a device or pipe ({member.name}); refusing to unpack it.")
            if member.issym() or member.islnk():
                # A symlink's target is read from its folder, a hard link's from the archive's root.
                base = target.parent if member.issym() else dest
                pointed = Path(os.path.normpath(base / member.linkname))
                if PurePosixPath(member.linkname).is_absolute() or not pointed.is_relative_to(dest):
                    raise UnsafeArchive(
                        f"{what} holds a link {member.name} -> {member.linkname} leading outside the repository; "
                        "refusing to unpack it."
                    )
            budget.take(member.size)
        # The stdlib's "data" filter checks the same again, and drops owners and odd permission bits.
        bundle.extractall(dest, members=members, filter="data")


def flatten_single_folder(dest: Path) -> bool:
    """When `dest` holds exactly one entry and it is a folder, move its content up (repo2docker's rule)."""
    entries = list(dest.iterdir())
    if len(entries) != 1 or not entries[0].is_dir() or entries[0].is_symlink():
        return False
    only = entries[0]
    holder = only.rename(dest / f".{only.name}.flattening")  # its own content may hold a name like it
    for child in holder.iterdir():
        child.rename(dest / child.name)
    holder.rmdir()
    return True
