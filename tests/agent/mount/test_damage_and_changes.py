"""A mount meets damage and change: a corrupted pack fails only the affected range,
snapshots taken while mounted appear, devices and filters shape the layout."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.mount import MountError, MountOptions
from comet.agent.mount.served_mount import ServedMount
from comet.agent.repository import Repository
from comet.agent.repository.pack import pack_key
from comet.agent.repository.tree import Node
from tests.agent.mount.conftest import DEVICE, ITEM, fusermount_u, open_repo


@contextmanager
def mount(vault: Path, where: Path, **options: object) -> Iterator[Path]:
    where.mkdir(exist_ok=True)
    served = ServedMount(
        open_repo(vault),
        MountOptions(mountpoint=str(where), **options),  # type: ignore[arg-type]
        lambda: {ITEM: "docs", "item-2": "mail"},
    )
    try:
        yield where
    finally:
        served.stop()
        if not served.wait(10):
            fusermount_u(where)


def file_node(repo: Repository, path: Path) -> Node:
    snapshot = repo.list_snapshots()[-1]
    tree = repo.load_tree(snapshot.tree)
    parts = str(path).strip("/").split("/")
    for name in parts[:-1]:
        node = next(n for n in tree.nodes if n.name == name)
        assert node.subtree is not None
        tree = repo.load_tree(node.subtree)
    return next(n for n in tree.nodes if n.name == parts[-1])


def test_corrupted_pack_fails_only_the_damaged_range(
    backed_up: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, vault = backed_up
    repo = open_repo(vault)
    node = file_node(repo, src / "random.bin")
    assert len(node.content) >= 3, "the test needs a file of several blobs"
    ranges, pos = [], 0
    for blob_id in node.content:
        loc = repo.locate(blob_id)
        ranges.append((pos, pos + loc.raw_length, loc))
        pos += loc.raw_length
    bad_start, bad_end, bad = ranges[1]
    pack = vault / pack_key(bad.pack_id)
    with open(pack, "r+b") as f:  # flip one byte inside the stored blob
        f.seek(bad.offset + bad.length // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    repo.close()
    original = (src / "random.bin").read_bytes()
    caplog.set_level(logging.WARNING, "comet.agent.mount")
    with mount(vault, tmp_path / "mnt") as mnt:
        item = mnt / "by-item" / "docs"
        path = item / os.readlink(item / "latest") / str(src / "random.bin").lstrip("/")
        fd = os.open(path, os.O_RDONLY)
        # The kernel reads whole 4 KiB pages: the pages the damaged blob touches fail,
        # every other byte reads.
        good_until = bad_start // 4096 * 4096
        good_from = -(-bad_end // 4096) * 4096
        try:
            # Sequential reads up to the damage succeed (read-ahead meets the bad blob
            # first and must not poison its neighbours).
            got = b"".join(
                os.pread(fd, min(65536, good_until - off), off)
                for off in range(0, good_until, 65536)
            )
            assert got == original[:good_until]
            with pytest.raises(OSError) as e:
                os.pread(fd, 4096, good_until)
            assert e.value.errno == errno.EIO
            with pytest.raises(OSError):
                os.pread(fd, 4096, good_from - 4096)
            assert os.pread(fd, len(original), good_from) == original[good_from:]
            assert os.pread(fd, 4096, 0) == original[:4096]
        finally:
            os.close(fd)
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_new_snapshots_appear_and_devices_group(
    backed_up: tuple[Path, Path], tmp_path: Path
) -> None:
    src, vault = backed_up
    with mount(vault, tmp_path / "mnt", all_devices=True, list_ttl=0.0) as mnt:
        assert sorted(os.listdir(mnt)) == ["by-device", "by-item"]
        assert os.listdir(mnt / "by-device") == ["host-a"]
        before = os.listdir(mnt / "by-item" / "docs")
        latest = mnt / "by-item" / "docs" / "latest"
        new = latest / str(src / "new-file.txt").lstrip("/")
        # The kernel now keeps 'missing' for that name of that snapshot, for an hour.
        assert not new.exists()
        (src / "new-file.txt").write_text("taken while mounted\n")
        repo = open_repo(vault)
        run_backup(repo, FilesSource([str(src)]), BackupOptions(ITEM, DEVICE, hostname="host-a"))
        run_backup(
            repo,
            FilesSource([str(src / "docs")]),
            BackupOptions("item-2", "device-2", hostname="host-b"),
        )
        repo.close()
        # 'latest' follows at once (list_ttl 0), before anything lists the item again.
        assert new.read_text() == "taken while mounted\n"
        after = os.listdir(mnt / "by-item" / "docs")
        assert len(after) == len(before) + 1
        assert sorted(os.listdir(mnt / "by-device")) == ["host-a", "host-b"]
        assert os.listdir(mnt / "by-device" / "host-b") == ["mail"]
        assert sorted(os.listdir(mnt / "by-item")) == ["docs", "mail"]


def test_snapshot_and_item_filters(backed_up: tuple[Path, Path], tmp_path: Path) -> None:
    src, vault = backed_up
    repo = open_repo(vault)
    first = repo.list_snapshots()[0].id.hex()
    run_backup(repo, FilesSource([str(src)]), BackupOptions(ITEM, DEVICE))
    run_backup(repo, FilesSource([str(src)]), BackupOptions("item-2", DEVICE))
    repo.close()
    with mount(vault, tmp_path / "a", snapshot=first[:10]) as mnt:
        assert os.listdir(mnt / "by-item") == ["docs"]
        assert len(os.listdir(mnt / "by-item" / "docs")) == 2
    with mount(vault, tmp_path / "b", item_ids=frozenset({"item-2"})) as mnt:
        assert os.listdir(mnt / "by-item") == ["mail"]
    with mount(vault, tmp_path / "c", device_id="another-device") as mnt:
        assert os.listdir(mnt / "by-item") == []


def test_refuses_bad_mount_points(backed_up: tuple[Path, Path], tmp_path: Path) -> None:
    _src, vault = backed_up
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    for where, message in (
        (tmp_path / "absent", "not a directory"),
        (full, "not empty"),
    ):
        with pytest.raises(MountError, match=message):
            ServedMount(open_repo(vault), MountOptions(mountpoint=str(where)), dict)
    with mount(vault, tmp_path / "mnt"), pytest.raises(MountError, match="already"):
        other = tmp_path / "other"
        other.mkdir()
        ServedMount(open_repo(vault), MountOptions(mountpoint=str(other)), dict)
    assert (full / "keep.txt").read_text() == "mine"
