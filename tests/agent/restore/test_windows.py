"""Directory restores fill files in bounded windows: with a window of a few files the
result is byte-identical, shared blobs are written into every window that uses them,
and hard links still reach their first name."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.repository import Repository
from comet.agent.restore import DirectoryTarget, run_restore
from comet.agent.restore import run as restore_run


def test_windowed_restore_is_byte_identical(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    shared = os.urandom(300_000)  # one blob used by files in different windows
    for d in range(4):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(5):
            body = shared if i == 2 else os.urandom(1000 * (d + i))
            (src / f"d{d}" / f"f{i}").write_bytes(body)
    os.link(src / "d0" / "f1", src / "d3" / "link-to-d0-f1")
    big = src / "big.bin"
    big.write_bytes(os.urandom(5 << 20))  # several chunks: a window by pieces too
    result = run_backup(repo, FilesSource([str(src)]), BackupOptions("item", "device"))
    assert not result.warnings
    monkeypatch.setattr(restore_run, "_WINDOW_FILES", 3)
    monkeypatch.setattr(restore_run, "_WINDOW_PIECES", 4)
    dest = tmp_path / "dest"
    restored = run_restore(repo, result.snapshot_id, DirectoryTarget(dest))
    assert not restored.warnings
    assert restored.files == 22
    out = dest / str(src).lstrip("/")
    for path in src.rglob("*"):
        if path.is_file():
            assert filecmp.cmp(path, out / path.relative_to(src), shallow=False), path
    linked = os.stat(out / "d3" / "link-to-d0-f1")
    assert linked.st_ino == os.stat(out / "d0" / "f1").st_ino and linked.st_nlink == 2
    assert not [p for p in out.rglob("*") if ".comet" in p.name]  # no temporary names
