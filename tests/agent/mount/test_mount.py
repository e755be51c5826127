"""A real FUSE mount of a backed-up tree: contents, metadata, layout, concurrency."""

from __future__ import annotations

import filecmp
import os
import stat
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from comet.agent.mount import MountOptions
from comet.agent.mount.served_mount import ServedMount
from comet.agent.mount.session import READ_AHEAD_KB
from tests.agent.mount.conftest import ITEM, fusermount_u, open_repo


def snapshot_dir(mnt: Path, src: Path) -> Path:
    item = mnt / "by-item" / "docs"
    latest = item / "latest"
    assert latest.is_symlink()
    snap = item / os.readlink(latest)
    return snap / str(src).lstrip("/")


def walk(root: Path) -> dict[str, os.stat_result]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.lstat()
    return out


def test_every_file_and_its_metadata_match(mounted: tuple[Path, Path]) -> None:
    src, mnt = mounted
    root = snapshot_dir(mnt, src)
    want, got = walk(src), walk(root)
    assert sorted(got) == sorted(want)
    for rel, a in want.items():
        b = got[rel]
        assert stat.S_IFMT(b.st_mode) == stat.S_IFMT(a.st_mode), rel
        assert stat.S_IMODE(b.st_mode) == stat.S_IMODE(a.st_mode), rel
        assert (b.st_uid, b.st_gid) == (a.st_uid, a.st_gid), rel
        if not stat.S_ISDIR(a.st_mode):
            assert b.st_mtime_ns == a.st_mtime_ns, rel
            assert b.st_nlink == a.st_nlink, rel
        if stat.S_ISLNK(a.st_mode):
            assert os.readlink(root / rel) == os.readlink(src / rel)
        if stat.S_ISREG(a.st_mode):
            assert b.st_size == a.st_size, rel
            assert filecmp.cmp(src / rel, root / rel, shallow=False), rel
    hard = got["text.sql"], got["docs/hardlink.sql"]
    assert hard[0].st_ino == hard[1].st_ino
    sparse = (root / "sparse.img").read_bytes()
    assert sparse[3 << 20 : (3 << 20) + 18] == b"data in the middle"
    assert sparse.count(0) == len(sparse) - 18 + b"data in the middle".count(0)


def test_find_counts_and_cmp_match(mounted: tuple[Path, Path]) -> None:
    src, mnt = mounted
    root = snapshot_dir(mnt, src)

    def find(path: Path) -> list[str]:
        out = subprocess.run(["find", "."], cwd=path, capture_output=True, check=True, text=True)
        return sorted(out.stdout.splitlines())

    assert find(root) == find(src)
    subprocess.run(["cmp", src / "random.bin", root / "random.bin"], check=True)
    subprocess.run(["diff", "-r", "--no-dereference", src / "docs", root / "docs"], check=True)


def test_layout_is_read_only(mounted: tuple[Path, Path]) -> None:
    src, mnt = mounted
    assert sorted(os.listdir(mnt)) == ["by-item"]
    assert os.listdir(mnt / "by-item") == ["docs"]
    entries = os.listdir(mnt / "by-item" / "docs")
    assert len(entries) == 2 and "latest" in entries
    root = snapshot_dir(mnt, src)
    for attempt in (
        lambda: (root / "new.txt").write_text("x"),
        lambda: open(root / "text.sql", "r+b").close(),
        lambda: (root / "text.sql").unlink(),
        lambda: os.mkdir(root / "newdir"),
    ):
        try:
            attempt()
        except OSError as e:
            assert e.errno in (30, 13), e  # EROFS, EACCES
        else:
            raise AssertionError("a write through the mount succeeded")


def test_concurrent_readers_get_the_right_bytes(mounted: tuple[Path, Path]) -> None:
    src, mnt = mounted
    root = snapshot_dir(mnt, src)
    names = ["random.bin", "text.sql", "sparse.img", "docs/hardlink.sql"] + [
        f"docs/deep/small-{i:02}.txt" for i in range(0, 40, 5)
    ]
    errors: list[str] = []

    def reader(name: str, chunk: int) -> None:
        with open(root / name, "rb") as f, open(src / name, "rb") as g:
            while True:
                a, b = f.read(chunk), g.read(chunk)
                if a != b:
                    errors.append(name)
                    return
                if not a:
                    return

    threads = [threading.Thread(target=reader, args=(n, c)) for n in names for c in (4096, 1 << 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


def test_sequential_reads_reach_the_mount_a_mib_at_a_time(mounted: tuple[Path, Path]) -> None:
    """The kernel's default read-ahead (128 KiB) also caps read requests at 128 KiB;
    the mount raises it (as root), so a sequential read costs an eighth of the requests."""
    src, mnt = mounted
    dev = os.stat(mnt).st_dev
    bdi = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    assert int(bdi.read_text()) == READ_AHEAD_KB
    root = snapshot_dir(mnt, src)
    subprocess.run(["cmp", src / "random.bin", root / "random.bin"], check=True)


def test_permissions_follow_the_original_owner(mounted: tuple[Path, Path]) -> None:
    src, mnt = mounted
    root = snapshot_dir(mnt, src)
    secret = root / "docs" / "secret.txt"
    as_owner = subprocess.run(
        ["setpriv", "--reuid=1234", "--regid=1234", "--clear-groups", "cat", str(secret)],
        capture_output=True,
        text=True,
    )
    assert as_owner.returncode == 0 and as_owner.stdout == "only for uid 1234\n"
    as_other = subprocess.run(
        ["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups", "cat", str(secret)],
        capture_output=True,
        text=True,
    )
    assert as_other.returncode != 0 and "Permission denied" in as_other.stderr


def test_a_second_walk_stays_in_the_kernel(backed_up: tuple[Path, Path], tmp_path: Path) -> None:
    """A snapshot never changes, so the kernel keeps its names and attributes: after one
    walk, a second ``find -ls`` (every entry's name and attributes) asks the mount only
    for listings, and a name missing from the snapshot is remembered as missing."""
    src, vault = backed_up
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    options = MountOptions(mountpoint=str(mnt))
    served = ServedMount(open_repo(vault), options, lambda: {ITEM: "docs"})
    try:
        fs = served.filesystem
        calls: Counter[str] = Counter()
        for name in ("lookup", "getattr"):
            handler = getattr(fs, name)

            async def counted(*args: Any, _handler: Any = handler, _name: str = name) -> Any:
                calls[_name] += 1
                return await _handler(*args)

            setattr(fs, name, counted)
        root = snapshot_dir(mnt, src)

        def find() -> list[str]:
            out = subprocess.run(
                ["find", ".", "-ls"], cwd=root, capture_output=True, check=True, text=True
            )
            return sorted(out.stdout.splitlines())

        first = find()
        assert not (root / "docs" / "no-such-file").exists()
        calls.clear()
        assert find() == first and len(first) == len(walk(src)) + 1
        assert not (root / "docs" / "no-such-file").exists()
        assert calls == Counter()
    finally:
        served.stop()
        if not served.wait(10):
            fusermount_u(mnt)
