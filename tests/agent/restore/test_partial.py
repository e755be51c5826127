"""allow_partial: unreadable chunks fail the restore naming the file, or are zero-filled
and reported."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.errors import DamagedDataError, IntegrityError
from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.restore import DirectoryTarget, SimulateTarget, TarTarget, run_restore
from tests.agent.restore.test_hostile import _commit

# Every test here also runs with the file-writing process making the files.
pytestmark = pytest.mark.usefixtures("both_writers")

OPTIONS = BackupOptions("item", "device")


@pytest.fixture
def damaged(tmp_path: Path, repo: Repository) -> tuple[bytes, Path, Path]:
    """A backup of a 12 MiB random file and a small one, then one byte of the random
    file's pack flipped."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(12 << 20))
    (src / "small.txt").write_text("intact")
    snapshot_id = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    pack = max((tmp_path / "vault").glob("data/*/*"), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    return snapshot_id, src, src / "big.bin"


def _check_zero_filled(restored: bytes, original: bytes, damaged_bytes: int) -> None:
    assert len(restored) == len(original)
    differing = [i for i in range(0, len(original), 4096) if restored[i] != original[i]]
    assert differing, "the damaged range was not zero-filled"
    zeros = sum(
        1 for i in range(0, len(original), 65536) if restored[i : i + 65536] == bytes(65536)
    )
    assert 0 < zeros * 65536 <= damaged_bytes + 2 * 65536


@pytest.mark.parametrize("kind", ["directory", "tar"])
def test_damage_fails_naming_the_file(
    tmp_path: Path, repo: Repository, damaged: tuple[bytes, Path, Path], kind: str
) -> None:
    snapshot_id, _, big = damaged
    with (tmp_path / "out.tar").open("wb") as f:
        target = DirectoryTarget(tmp_path / "dest") if kind == "directory" else TarTarget(f)
        with pytest.raises(DamagedDataError, match=rf"cannot restore {big}: blob [0-9a-f]{{64}}"):
            run_restore(repo, snapshot_id, target)
    # still an IntegrityError for callers that only know that
    assert issubclass(DamagedDataError, IntegrityError)


def test_partial_directory_restore_zero_fills(
    tmp_path: Path, repo: Repository, damaged: tuple[bytes, Path, Path]
) -> None:
    snapshot_id, src, big = damaged
    dest = tmp_path / "dest"
    result = run_restore(repo, snapshot_id, DirectoryTarget(dest), allow_partial=True)
    assert [d.path for d in result.damaged] == [str(big)]
    damaged_bytes = result.damaged[0].damaged_bytes
    assert 0 < damaged_bytes < big.stat().st_size
    assert [w.path for w in result.warnings] == [str(big)]
    assert f"{damaged_bytes} damaged bytes were zero-filled" in result.warnings[0].message
    out = dest / str(src).lstrip("/")
    assert (out / "small.txt").read_text() == "intact"
    _check_zero_filled((out / "big.bin").read_bytes(), big.read_bytes(), damaged_bytes)


def test_partial_tar_restore_stays_a_valid_archive(
    tmp_path: Path, repo: Repository, damaged: tuple[bytes, Path, Path]
) -> None:
    snapshot_id, _src, big = damaged
    archive = tmp_path / "out.tar"
    with archive.open("wb") as f:
        result = run_restore(repo, snapshot_id, TarTarget(f), allow_partial=True)
    assert [d.path for d in result.damaged] == [str(big)]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "-xf", archive, "-C", out], check=True, timeout=60)
    restored = (out / str(big).lstrip("/")).read_bytes()
    _check_zero_filled(restored, big.read_bytes(), result.damaged[0].damaged_bytes)


def test_blob_missing_from_every_index(tmp_path: Path, repo: Repository) -> None:
    """The lost blob's length is unknown: blobs before it are placed from the start,
    blobs after it from the end (the node's size), the gap is zero-filled."""
    head, tail = b"H" * 1000, b"T" * 500
    lost = repo.sealer.blob_id(BlobType.DATA, b"never stored")
    node = Node(
        name="f",
        type=NodeType.FILE,
        mode=0o644,
        size=1000 + 300 + 500,
        content=(
            repo.sealer.blob_id(BlobType.DATA, head),
            lost,
            repo.sealer.blob_id(BlobType.DATA, tail),
        ),
    )
    snapshot_id = _commit(repo, Tree((node,)), [], [head, tail])
    with pytest.raises(DamagedDataError, match=r"cannot restore /f: blob .* is in no index"):
        run_restore(repo, snapshot_id, SimulateTarget())
    for target_kind in ("directory", "tar"):
        if target_kind == "directory":
            result = run_restore(
                repo, snapshot_id, DirectoryTarget(tmp_path / "d"), allow_partial=True
            )
            data = (tmp_path / "d" / "f").read_bytes()
        else:
            with (tmp_path / "t.tar").open("wb") as f:
                result = run_restore(repo, snapshot_id, TarTarget(f), allow_partial=True)
            with tarfile.open(tmp_path / "t.tar") as tf:
                member = tf.extractfile("f")
                assert member is not None
                data = member.read()
        assert data == head + bytes(300) + tail, target_kind
        assert [(d.path, d.damaged_bytes) for d in result.damaged] == [("/f", 300)]


def test_unreadable_directory(tmp_path: Path, repo: Repository) -> None:
    missing_tree = repo.sealer.blob_id(BlobType.TREE, b"gone")
    root = Tree(
        (
            Node(name="lost", type=NodeType.DIR, mode=0o755, subtree=missing_tree),
            Node(name="ok", type=NodeType.DIR, mode=0o755),
        )
    )
    snapshot_id = _commit(repo, root, [], [])
    with pytest.raises(DamagedDataError, match="cannot read directory /lost"):
        run_restore(repo, snapshot_id, DirectoryTarget(tmp_path / "a"))
    result = run_restore(repo, snapshot_id, DirectoryTarget(tmp_path / "b"), allow_partial=True)
    assert [w.path for w in result.warnings] == ["/lost"]
    assert (tmp_path / "b" / "ok").is_dir() and (tmp_path / "b" / "lost").is_dir()
