"""Unpacking a record's content: names kept inside the checkout, links that cannot escape, the byte bound, and
repo2docker's layout rule (a single top-level folder flattened)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from binder_actors.builders.archives import (
    ByteBudget,
    ContentTooBig,
    UnsafeArchive,
    flatten_single_folder,
    safe_path,
    unpack_tar,
    unpack_zip,
)

LIMIT = 10_000


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                bundle.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                bundle.addfile(info, io.BytesIO(data))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` (symlinks as `-> target`)."""
    found = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = "-> " + str(path.readlink())
        elif path.is_file():
            found[name] = path.read_text()
    return found


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("requirements.txt", "requirements.txt"),
        ("sub/dir/notebook.ipynb", "sub/dir/notebook.ipynb"),
        ("./a/./b", "a/b"),
        ("windows\\path.txt", "windows/path.txt"),
        ("../escape", None),
        ("a/../../escape", None),
        ("/etc/passwd", None),
        ("", None),
        ("nul\x00byte", None),
        (".", None),
    ],
)
def test_safe_path_keeps_names_inside_the_checkout(tmp_path: Path, name: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(UnsafeArchive, match="outside the repository"):
            safe_path(tmp_path, name, "The record")
    else:
        assert safe_path(tmp_path, name, "The record") == tmp_path / expected


def test_zip_unpacks_its_folders(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"repo/requirements.txt": b"tabulate\n", "repo/data/x.csv": b"1,2\n"})
    unpack_zip(archive, tmp_path / "out", LIMIT)
    assert tree(tmp_path / "out") == {"repo/data/x.csv": "1,2\n", "repo/requirements.txt": "tabulate\n"}


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/evil.txt", "ok/../../evil.txt"])
def test_zip_with_a_name_outside_is_refused_before_anything_is_written(tmp_path: Path, evil: str) -> None:
    archive = make_zip(tmp_path / "evil.zip", {"first.txt": b"written first?\n", evil: b"pwned\n"})
    with pytest.raises(UnsafeArchive, match="outside the repository"):
        unpack_zip(archive, tmp_path / "out", LIMIT)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_zip_larger_than_the_bound_unpacked_is_refused(tmp_path: Path) -> None:
    # highly compressible: small on disk, large unpacked (a zip bomb in miniature)
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (LIMIT + 1)})
    assert archive.stat().st_size < LIMIT
    with pytest.raises(ContentTooBig, match=f"BINDER_CONTENT_MAX_BYTES={LIMIT}"):
        unpack_zip(archive, tmp_path / "out", LIMIT)
    assert not (tmp_path / "out").exists()


def test_tar_unpacks_files_and_links_that_stay_inside(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [("d/requirements.txt", b"tabulate\n"), ("d/sub/x.txt", b"x\n"), link("d/sub/req", "../requirements.txt")],
    )
    unpack_tar(archive, tmp_path / "out", LIMIT)
    assert tree(tmp_path / "out") == {
        "d/requirements.txt": "tabulate\n",
        "d/sub/req": "-> ../requirements.txt",
        "d/sub/x.txt": "x\n",
    }


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (("../evil.txt", b"pwned\n"), "outside the repository"),
        (("/abs/evil.txt", b"pwned\n"), "outside the repository"),
        (link("d/passwd", "/etc/passwd"), "leading outside"),
        (link("d/up", "../../.."), "leading outside"),
        (link("d/hard", "../outside", tarfile.LNKTYPE), "leading outside"),
        (link("d/dev", "", tarfile.CHRTYPE), "device or pipe"),
        (link("d/fifo", "", tarfile.FIFOTYPE), "device or pipe"),
    ],
    ids=["dotdot", "absolute", "symlink-absolute", "symlink-up", "hardlink-up", "device", "fifo"],
)
def test_tar_that_would_write_outside_is_refused(tmp_path: Path, member, message: str) -> None:
    archive = make_tar(tmp_path / "evil.tar.gz", [("d/ok.txt", b"ok\n"), member])
    with pytest.raises(UnsafeArchive, match=message):
        unpack_tar(archive, tmp_path / "out", LIMIT)
    assert not (tmp_path / "out").exists()


def test_tar_larger_than_the_bound_unpacked_is_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "big.tar.gz", [("a", b"\0" * (LIMIT // 2)), ("b", b"\0" * (LIMIT // 2 + 1))])
    with pytest.raises(ContentTooBig, match="unpacked is larger than"):
        unpack_tar(archive, tmp_path / "out", LIMIT)


@pytest.mark.parametrize(
    ("files", "flattened", "expected"),
    [
        ({"repo/a.txt": "a", "repo/sub/b.txt": "b"}, True, {"a.txt": "a", "sub/b.txt": "b"}),
        ({"repo/repo/a.txt": "a"}, True, {"repo/a.txt": "a"}),  # its content may hold its own name
        ({"repo/a.txt": "a", "top.txt": "t"}, False, {"repo/a.txt": "a", "top.txt": "t"}),
        ({"one.txt": "1"}, False, {"one.txt": "1"}),
        ({"a/x.txt": "x", "b/y.txt": "y"}, False, {"a/x.txt": "x", "b/y.txt": "y"}),
    ],
    ids=["single-folder", "folder-holding-its-name", "folder-and-file", "single-file", "two-folders"],
)
def test_a_single_top_level_folder_is_flattened(tmp_path: Path, files, flattened: bool, expected) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert flatten_single_folder(tmp_path) is flattened
    assert tree(tmp_path) == expected


def test_byte_budget_counts_until_the_bound() -> None:
    budget = ByteBudget(100, "The record")
    budget.take(60)
    budget.check(40)
    with pytest.raises(ContentTooBig, match="The record is larger than BINDER_CONTENT_MAX_BYTES=100 bytes"):
        budget.check(41)
    budget.take(40)
    with pytest.raises(ContentTooBig):
        budget.take(1)
