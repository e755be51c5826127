"""Every restore target reads through the same batched, pack-ordered fetch path: none
needs more than ~1.1x the object GETs of a directory restore of the same snapshot
(counted on a local vault and on an S3 vault served by moto_server)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from comet.agent.backup.options import BackupOptions, FilesSource
from comet.agent.backup.run import run_backup
from comet.agent.jobs.targets import ArchiveFormat, RestoreType, TargetSpec, open_target
from comet.agent.repository import Repository
from comet.agent.restore.metered import MeteredStorage
from comet.agent.restore.run import run_restore
from comet.agent.restore.target import RestoreTarget
from comet.agent.storage.base import Storage
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.s3 import S3Config, S3Storage

VAULT_KEY = b"g" * 32


def _source(root: Path) -> Path:
    """Many small files between a few large ones, in several folders: the shape where
    one-blob-at-a-time reads cost hundreds of GETs."""
    src = root / "src"
    for d in range(6):
        folder = src / f"dir{d}"
        folder.mkdir(parents=True)
        for i in range(60):
            (folder / f"small{i}.txt").write_bytes(os.urandom(300 + 37 * i))
        (folder / "big.bin").write_bytes(os.urandom(3 << 20))
    os.symlink("dir0/small0.txt", src / "link")
    return src


def _targets(
    out: Path,
) -> dict[str, Callable[[], contextlib.AbstractContextManager[RestoreTarget]]]:
    def spec(
        _name: str, **kw: object
    ) -> Callable[[], contextlib.AbstractContextManager[RestoreTarget]]:
        return lambda: open_target(TargetSpec(**kw))  # type: ignore[arg-type]

    return {
        "directory": spec("directory", type=RestoreType.FILES, destination=str(out / "dir")),
        "simulate": spec("simulate", type=RestoreType.SIMULATE),
        "program-per-file": spec(
            "pf", type=RestoreType.PROGRAM_PER_FILE, program_command="cat > /dev/null"
        ),
        "program-archive": spec(
            "pa", type=RestoreType.PROGRAM_ARCHIVE, program_command="cat > /dev/null"
        ),
        "tar": spec("tar", type=RestoreType.ARCHIVE_FILE, destination=str(out / "a.tar")),
        "zip": spec(
            "zip",
            type=RestoreType.ARCHIVE_FILE,
            destination=str(out / "a.zip"),
            archive_format=ArchiveFormat.ZIP,
        ),
        "sqfs": spec(
            "sqfs",
            type=RestoreType.ARCHIVE_FILE,
            destination=str(out / "a.sqfs"),
            archive_format=ArchiveFormat.SQFS,
        ),
    }


def _gets_per_target(storage: Storage, tmp_path: Path) -> dict[str, int]:
    src = _source(tmp_path)
    repo = Repository.init(storage, VAULT_KEY)
    snapshot = run_backup(repo, FilesSource([str(src)]), BackupOptions("item", "dev")).snapshot_id
    repo.close()
    out = tmp_path / "out"
    out.mkdir()
    counts: dict[str, int] = {}
    for name, make in _targets(out).items():
        meter = MeteredStorage(storage)
        repo = Repository.open(meter, VAULT_KEY)
        opened = meter.gets  # config, keys, indexes: the same for every target
        with make() as target:
            run_restore(repo, snapshot, target)
        counts[name] = meter.gets - opened
        repo.close()
    return counts


def _check(counts: dict[str, int]) -> None:
    base = counts["directory"]
    assert base > 0
    for name, gets in counts.items():
        assert gets <= base * 1.1 + 1, f"{name}: {gets} GETs against {base} for a directory"


@pytest.mark.timeout(120)
def test_every_target_reads_like_a_directory_restore_local(tmp_path: Path) -> None:
    counts = _gets_per_target(LocalStorage(tmp_path / "vault"), tmp_path)
    _check(counts)


@pytest.mark.timeout(180)
def test_every_target_reads_like_a_directory_restore_s3(
    tmp_path: Path, s3_bucket: S3Config
) -> None:
    storage = S3Storage(s3_bucket)
    try:
        counts = _gets_per_target(storage, tmp_path)
    finally:
        storage.close()
    _check(counts)
