"""Restore: full roundtrip with metadata, selections, overwrite policies, damage."""

from __future__ import annotations

import filecmp
import os
import stat
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.cancel import CancelToken
from comet.agent.errors import CancelledError, IntegrityError
from comet.agent.repository import Repository
from comet.agent.restore import DirectoryTarget, Overwrite, SimulateTarget, run_restore
from tests.agent.restore.conftest import xattrs_supported

OPTIONS = BackupOptions("item", "device")


def _walk(root: Path) -> dict[str, os.stat_result]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def test_rich_tree_roundtrip(tmp_path: Path, repo: Repository, rich_tree: Path) -> None:
    result = run_backup(repo, FilesSource([str(rich_tree)]), OPTIONS)
    assert not result.warnings, result.warnings
    dest = tmp_path / "dest"
    restored = run_restore(repo, result.snapshot_id, DirectoryTarget(dest))
    assert not restored.warnings, restored.warnings
    out = dest / str(rich_tree).lstrip("/")

    before, after = _walk(rich_tree), _walk(out)
    assert sorted(before) == sorted(after)
    for rel, st in before.items():
        new = after[rel]
        assert stat.S_IFMT(st.st_mode) == stat.S_IFMT(new.st_mode), rel
        assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(new.st_mode), rel
        assert st.st_mtime_ns == new.st_mtime_ns, rel
        assert (st.st_uid, st.st_gid) == (new.st_uid, new.st_gid), rel
        if stat.S_ISREG(st.st_mode):
            assert filecmp.cmp(rich_tree / rel, out / rel, shallow=False), rel
        if stat.S_ISLNK(st.st_mode):
            assert os.readlink(rich_tree / rel) == os.readlink(out / rel)
    assert stat.S_ISFIFO(after["fifo"].st_mode)
    assert after["hard1"].st_ino == after["a/hard2"].st_ino
    assert after["hard1"].st_nlink == 2
    sparse = after["sparse.img"]
    assert sparse.st_size == 24 << 20
    assert sparse.st_blocks * 512 < 1 << 20  # the 24 MiB of holes stayed holes
    if xattrs_supported(out):
        assert os.getxattr(out / "hard1", "user.comet") == b"value\0bin"
        assert os.getxattr(out / "a", "user.dir") == b"d"
    # no temporary files left behind
    assert not [p for p in after if ".comet-" in p]


def test_simulate_matches_directory_restore(repo: Repository, rich_tree: Path) -> None:
    result = run_backup(repo, FilesSource([str(rich_tree)]), OPTIONS)
    target = SimulateTarget()
    restored = run_restore(repo, result.snapshot_id, target)
    assert not restored.warnings
    assert target.files[str(rich_tree / "random.bin")].size == 20 << 20
    # the walk is sorted, so "a/hard2" is stored first and "hard1" links to it
    assert target.others[str(rich_tree / "hard1")] == "hardlink"
    assert target.others[str(rich_tree / "fifo")] == "fifo"


def test_partial_restore(tmp_path: Path, repo: Repository, rich_tree: Path) -> None:
    result = run_backup(repo, FilesSource([str(rich_tree)]), OPTIONS)
    dest = tmp_path / "dest"
    paths = [str(rich_tree / "a" / "b"), str(rich_tree / "empty")]
    run_restore(repo, result.snapshot_id, DirectoryTarget(dest), paths=paths)
    out = dest / str(rich_tree).lstrip("/")
    assert sorted(_walk(out)) == ["a", "a/b", "a/b/c", "a/b/c/deep.txt", "empty"]


def test_restore_to_original_paths_with_overwrite_policies(
    repo: Repository, rich_tree: Path
) -> None:
    result = run_backup(repo, FilesSource([str(rich_tree)]), OPTIONS)
    target_file = rich_tree / "ünïcødé ✓ 名前.txt"
    target_file.write_text("local edit")
    skip = run_restore(repo, result.snapshot_id, DirectoryTarget("", original_paths=True))
    assert target_file.read_text() == "local edit" and skip.skipped > 0
    os.utime(target_file, ns=(1, 1))  # now older than the snapshot's copy
    run_restore(
        repo,
        result.snapshot_id,
        DirectoryTarget("", original_paths=True, overwrite=Overwrite.IF_NEWER),
        paths=[str(target_file)],
    )
    assert target_file.read_text() == "grüße\n"
    target_file.write_text("again")
    run_restore(
        repo,
        result.snapshot_id,
        DirectoryTarget("", original_paths=True, overwrite=Overwrite.OVERWRITE),
        paths=[str(target_file)],
    )
    assert target_file.read_text() == "grüße\n"


def test_damaged_pack_fails_restore(tmp_path: Path, repo: Repository, rich_tree: Path) -> None:
    result = run_backup(repo, FilesSource([str(rich_tree / "random.bin")]), OPTIONS)
    vault = tmp_path / "vault"
    packs = sorted(vault.glob("data/*/*"), key=lambda p: p.stat().st_size)
    biggest = packs[-1]
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    biggest.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"blob [0-9a-f]{64}"):
        run_restore(repo, result.snapshot_id, DirectoryTarget(tmp_path / "dest"))
    assert not [p for p in (tmp_path / "dest").rglob("*") if ".comet-" in p.name]


def test_cancelled_restore(tmp_path: Path, repo: Repository, rich_tree: Path) -> None:
    result = run_backup(repo, FilesSource([str(rich_tree)]), OPTIONS)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        run_restore(repo, result.snapshot_id, DirectoryTarget(tmp_path / "d"), cancel=token)
