"""Hostile snapshots against every archive and program target: no member is absolute,
climbs with ``..`` or holds NUL, and extracting with the real tools writes nothing
outside the destination."""

from __future__ import annotations

import os
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from comet.agent.repository import Repository
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.restore import (
    ProgramArchiveTarget,
    ProgramPerFileTarget,
    RestoreResult,
    SquashfsTarget,
    TarTarget,
    ZipTarget,
    run_restore,
)
from tests.agent.restore.test_hostile import _commit, _file, _outside_untouched, _tree_id

UNSAFE = ["..", ".", "", "../evil", "/abs", "a/b", "nul\0x", "link/file"]


def _hostile(repo: Repository, outside: Path) -> bytes:
    payload = b"pwned"
    inner = Tree((_file(repo, "file", payload), _file(repo, "..", payload)))
    root = Tree(
        (
            *[_file(repo, n, payload) for n in UNSAFE],
            _file(repo, "/" + str(outside / "victim"), payload),
            Node(name="link", type=NodeType.SYMLINK, target=str(outside)),
            Node(name="link", type=NodeType.DIR, mode=0o755, subtree=_tree_id(repo, inner)),
            _file(repo, "hl", payload, link=("..", "outside", "victim")),
            _file(repo, "ok.txt", b"fine"),
        )
    )
    return _commit(repo, root, [inner], [payload, b"fine"])


def _safe(name: str) -> bool:
    return not name.startswith("/") and ".." not in name.split("/") and "\0" not in name


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def _tar(archive: Path, dest: Path) -> list[str]:
    with tarfile.open(archive) as tf:
        names = tf.getnames()
    _run(["tar", "-xf", str(archive), "-C", str(dest)])
    return names


def _zip(archive: Path, dest: Path) -> list[str]:
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    _run(["unzip", "-q", str(archive), "-d", str(dest)])
    return names


def _sqfs(image: Path, dest: Path) -> list[str]:
    listing = subprocess.run(
        ["unsquashfs", "-l", str(image)], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    _run(["unsquashfs", "-q", "-n", "-f", "-d", str(dest), str(image)])
    return [line.removeprefix("squashfs-root/") for line in listing.split("\n")[1:] if line]


Restore = Callable[[Repository, bytes, Path, Path], tuple[RestoreResult, list[str]]]


def _via_tar(
    repo: Repository, sid: bytes, work: Path, dest: Path
) -> tuple[RestoreResult, list[str]]:
    with (work / "h.tar").open("wb") as f:
        result = run_restore(repo, sid, TarTarget(f))
    return result, _tar(work / "h.tar", dest)


def _via_zip(
    repo: Repository, sid: bytes, work: Path, dest: Path
) -> tuple[RestoreResult, list[str]]:
    with (work / "h.zip").open("wb") as f:
        result = run_restore(repo, sid, ZipTarget(f))
    return result, _zip(work / "h.zip", dest)


def _via_sqfs(
    repo: Repository, sid: bytes, work: Path, dest: Path
) -> tuple[RestoreResult, list[str]]:
    result = run_restore(repo, sid, SquashfsTarget(work / "h.sqfs"))
    return result, _sqfs(work / "h.sqfs", dest)


def _via_program_archive(
    repo: Repository, sid: bytes, work: Path, dest: Path
) -> tuple[RestoreResult, list[str]]:
    result = run_restore(
        repo, sid, ProgramArchiveTarget(f"tee '{work}/p.tar' | tar -x -C '{dest}'")
    )
    with tarfile.open(work / "p.tar") as tf:
        return result, tf.getnames()


def _via_program_per_file(
    repo: Repository, sid: bytes, work: Path, dest: Path
) -> tuple[RestoreResult, list[str]]:
    command = 'cat > "$DEST/$COMET_RESTORE_NAME"; printf "%s\\n" "$COMET_RESTORE_PATH" >> "$LOG"'
    env = {**os.environ, "DEST": str(dest), "LOG": str(work / "paths.log")}
    result = run_restore(repo, sid, ProgramPerFileTarget(command, env=env))
    paths = (work / "paths.log").read_text().splitlines()
    return result, [p.lstrip("/") for p in paths]


@pytest.mark.parametrize(
    "restore",
    [_via_tar, _via_zip, _via_sqfs, _via_program_archive, _via_program_per_file],
    ids=["tar", "zip", "squashfs", "program-archive", "program-per-file"],
)
def test_hostile_snapshot(
    tmp_path: Path, repo: Repository, sandbox: tuple[Path, Path], restore: Restore
) -> None:
    dest, outside = sandbox
    work = tmp_path / "work"
    work.mkdir()
    result, names = restore(repo, _hostile(repo, outside), work, dest)
    unsafe = [w for w in result.warnings if "unsafe name" in w.message]
    assert len(unsafe) == len(UNSAFE) + 1  # and the absolute victim path
    assert any("duplicate" in w.message for w in result.warnings)
    assert names and all(_safe(n) for n in names), names
    assert "ok.txt" in names and "link/file" not in names
    _outside_untouched(dest, outside)
    # the hard link that pointed outside was restored from its own content
    assert (dest / "hl").read_bytes() == b"pwned"
    assert (dest / "ok.txt").read_bytes() == b"fine"


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    dest = tmp_path / "box" / "dest"
    outside = tmp_path / "box" / "outside"
    dest.mkdir(parents=True)
    outside.mkdir()
    (outside / "victim").write_text("original")
    return dest, outside
