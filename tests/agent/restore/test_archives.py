"""Archive restores (tar, tar.gz, tar.zst, zip, SquashFS) checked with the real tools."""

from __future__ import annotations

import os
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.errors import RestoreProgramError, SnapshotNotFoundError
from comet.agent.repository import Repository
from comet.agent.restore import (
    Compression,
    SquashfsTarget,
    TarTarget,
    ZipTarget,
    run_restore,
)
from comet.agent.storage.memory import MemoryStorage
from tests.agent.restore.compare import compare_trees
from tests.agent.restore.conftest import VAULT_KEY, xattrs_supported

OPTIONS = BackupOptions("item", "device")
LONG_DIR = "d" * 120
LONG_NAME = "長い名前-" * 12 + ".txt"  # with the directories, well over 255 bytes


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, check=False, timeout=120
    )
    assert done.returncode == 0, (argv, done.stderr.decode(errors="replace"))
    return done.stdout.decode(errors="replace")


@pytest.fixture
def snapshot(repo: Repository, rich_tree: Path) -> tuple[Repository, bytes, Path]:
    deep = rich_tree / LONG_DIR / LONG_DIR
    deep.mkdir(parents=True)
    (deep / LONG_NAME).write_text("far down\n")
    assert len(os.fsencode(deep / LONG_NAME)) > 255 + len(os.fsencode(rich_tree))
    result = run_backup(repo, FilesSource([str(rich_tree)]), OPTIONS)
    assert not result.warnings
    return repo, result.snapshot_id, rich_tree


def _inside(out: Path, src: Path) -> Path:
    return out / str(src).lstrip("/")


@pytest.mark.parametrize("compression", list(Compression))
def test_tar_roundtrip_with_gnu_tar(
    tmp_path: Path, snapshot: tuple[Repository, bytes, Path], compression: Compression
) -> None:
    repo, snapshot_id, src = snapshot
    archive = tmp_path / f"restore.tar.{compression}"
    with archive.open("wb") as f:
        result = run_restore(repo, snapshot_id, TarTarget(f, compression=compression))
    assert not result.warnings
    if compression == Compression.GZIP:
        _run("gzip", "-t", archive)
        plain = tmp_path / "plain.tar"
        plain.write_bytes(subprocess.run(["gzip", "-dc", archive], capture_output=True).stdout)
    elif compression == Compression.ZSTD:
        plain = tmp_path / "plain.tar"
        _run("zstd", "-q", "-d", archive, "-o", plain)
    else:
        plain = archive
    assert plain.stat().st_size % tarfile.RECORDSIZE == 0
    listing = _run("tar", "-tvf", plain)
    assert LONG_NAME in listing and "ünïcødé ✓ 名前.txt" in listing
    assert "link to" in listing  # the hard link is a link entry, not a second copy
    out = tmp_path / "out"
    out.mkdir()
    _run("tar", "--xattrs", "--xattrs-include=*", "-xpf", plain, "-C", out)
    compare_trees(src, _inside(out, src), xattrs=xattrs_supported(tmp_path))
    sparse = _inside(out, src) / "sparse.img"
    assert sparse.stat().st_size == 24 << 20
    # Python's reader agrees on the sub-second mtime kept in the pax header
    with tarfile.open(plain) as tf:
        member = tf.getmember(str(src / "empty dir").lstrip("/"))
        assert member.pax_headers["mtime"] == "1600000000.123456789"


def test_zip_roundtrip_with_unzip(tmp_path: Path, snapshot: tuple[Repository, bytes, Path]) -> None:
    repo, snapshot_id, src = snapshot
    archive = tmp_path / "restore.zip"
    with archive.open("wb") as f:
        result = run_restore(repo, snapshot_id, ZipTarget(f))
    # zip holds neither fifos nor names that are not UTF-8: both are warned about
    assert sorted(w.path.rsplit("/", 1)[-1] for w in result.warnings) == [
        "fifo",
        os.fsdecode(b"latin1-\xe9"),
    ]
    assert "No errors detected" in _run("unzip", "-t", archive)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        stored = {i.filename: i.compress_type for i in zf.infolist()}
    assert stored[str(src / "random.bin").lstrip("/")] == zipfile.ZIP_STORED
    assert stored[str(src / "text.log").lstrip("/")] == zipfile.ZIP_DEFLATED
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    out = tmp_path / "out"
    out.mkdir()
    _run("unzip", "-q", archive, "-d", out)
    skip = frozenset({"fifo", os.fsdecode(b"latin1-\xe9")})
    # zip keeps whole seconds (extended timestamp) and no hard links; unzip does not
    # set the time of the symlinks it makes
    compare_trees(
        src,
        _inside(out, src),
        mtime_precision_ns=10**9,
        skip=skip,
        hard_links=False,
        symlink_mtimes=False,
    )


def test_squashfs_roundtrip_with_unsquashfs(
    tmp_path: Path, snapshot: tuple[Repository, bytes, Path]
) -> None:
    repo, snapshot_id, src = snapshot
    image = tmp_path / "restore.sqfs"
    result = run_restore(repo, snapshot_id, SquashfsTarget(image))
    assert not result.warnings
    listing = _run("unsquashfs", "-lls", image)
    assert LONG_NAME in listing
    out = tmp_path / "out"
    _run("unsquashfs", "-q", "-n", "-d", out, image)
    # SquashFS keeps whole seconds
    compare_trees(src, _inside(out, src), mtime_precision_ns=10**9, xattrs=xattrs_supported(src))
    # and the second reader, from squashfs-tools-ng, agrees on the content
    data = subprocess.run(
        ["rdsquashfs", "-c", str(src / "random.bin").lstrip("/"), str(image)],
        capture_output=True,
        check=True,
    ).stdout
    assert data == (src / "random.bin").read_bytes()


def test_squashfs_tool_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RestoreProgramError, match="squashfs-tools-ng"):
        SquashfsTarget(tmp_path / "x.sqfs", tool="comet-no-such-tar2sqfs")


def test_failed_squashfs_restore_leaves_no_image(
    tmp_path: Path, snapshot: tuple[Repository, bytes, Path]
) -> None:
    repo, _snapshot_id, _ = snapshot
    image = tmp_path / "restore.sqfs"
    with pytest.raises(SnapshotNotFoundError):
        run_restore(repo, "f" * 64, SquashfsTarget(image))
    assert not image.exists()


def _members_tar(data: Path) -> list[str]:
    with tarfile.open(data) as tf:
        return tf.getnames()


def test_partial_selection_in_every_archive(
    tmp_path: Path, snapshot: tuple[Repository, bytes, Path]
) -> None:
    repo, snapshot_id, src = snapshot
    paths = [str(src / "a" / "b"), str(src / "empty")]
    prefix = str(src).lstrip("/")
    wanted = {f"{prefix}/a/b", f"{prefix}/a/b/c", f"{prefix}/a/b/c/deep.txt", f"{prefix}/empty"}

    def selected(names: list[str]) -> set[str]:
        return {n.rstrip("/") for n in names if n.rstrip("/").startswith(prefix + "/")}

    with (tmp_path / "p.tar").open("wb") as f:
        run_restore(repo, snapshot_id, TarTarget(f), paths=paths)
    assert selected(_members_tar(tmp_path / "p.tar")) == wanted | {f"{prefix}/a"}
    with (tmp_path / "p.zip").open("wb") as f:
        run_restore(repo, snapshot_id, ZipTarget(f), paths=paths)
    with zipfile.ZipFile(tmp_path / "p.zip") as zf:
        assert selected(zf.namelist()) == wanted | {f"{prefix}/a"}
    run_restore(repo, snapshot_id, SquashfsTarget(tmp_path / "p.sqfs"), paths=paths)
    out = tmp_path / "sq"
    _run("unsquashfs", "-q", "-n", "-d", out, tmp_path / "p.sqfs")
    assert {str(p.relative_to(out)) for p in out.rglob("*")} >= wanted
    assert not (_inside(out, src) / "random.bin").exists()


def test_zip64_sparse_file_over_4gib(tmp_path: Path) -> None:
    """A 4.5 GiB sparse file with a few MB of data: zip64 entry, accepted by unzip."""
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.img"
    payload = os.urandom(3 << 20)
    with big.open("wb") as f:
        f.truncate(4608 << 20)
        f.seek(3 << 30)
        f.write(payload)
    (src / "small.txt").write_text("small")
    repo = Repository.init(MemoryStorage(), VAULT_KEY)
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    archive = tmp_path / "big.zip"
    with archive.open("wb") as f:
        restored = run_restore(repo, result.snapshot_id, ZipTarget(f))
    assert not restored.warnings
    assert archive.stat().st_size < 64 << 20
    assert "No errors detected" in _run("unzip", "-tq", archive)
    crc = 0
    with big.open("rb") as f:
        while block := f.read(16 << 20):
            crc = zlib.crc32(block, crc)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(str(big).lstrip("/"))
    assert info.file_size == 4608 << 20
    assert crc == info.CRC  # unzip -t checked the data against this CRC
