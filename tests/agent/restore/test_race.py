"""A root restore into a tree an unprivileged user can write never touches anything
outside the destination, however that user swaps directories for symlinks meanwhile;
archive outputs are never written through a planted symlink; privileged metadata is
restored only when asked for."""

from __future__ import annotations

import os
import shutil
import stat
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet.agent.backup.options import BackupOptions, FilesSource
from comet.agent.backup.run import run_backup
from comet.agent.jobs.targets import ArchiveFormat, RestoreType, TargetSpec, open_target
from comet.agent.repository import Repository
from comet.agent.restore import directory as directory_module
from comet.agent.restore.directory import DirectoryTarget, Overwrite
from comet.agent.restore.output import OutputFile
from comet.agent.restore.run import run_restore
from comet.agent.restore.target import RestorePath, TargetRefusedError
from comet.agent.storage.local import LocalStorage
from tests.agent.restore.swapper import NOBODY, attack, state_of, stop_attack

VAULT_KEY = b"x" * 32
ROUNDS = 50


@pytest.fixture
def base() -> Iterator[Path]:
    """A temp dir nobody can traverse (pytest's tmp_path is 0700 root), on tmpfs where
    there is one (recreating many files just deleted is slow on the root filesystem)."""
    parent = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    path = Path(tempfile.mkdtemp(prefix="comet-race-", dir=parent))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def canary(base: Path) -> Path:
    canary = base / "canary"
    (canary / "inner").mkdir(parents=True)
    (canary / "keep.txt").write_text("canary\n")
    (canary / "inner" / "deep.txt").write_text("deep canary\n")
    os.chmod(canary / "keep.txt", 0o600)
    for p in (canary / "inner" / "deep.txt", canary / "inner", canary / "keep.txt", canary):
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    return canary


def _snapshot(base: Path) -> tuple[Repository, bytes, Path]:
    """A snapshot whose ``victim`` folder holds files and folders."""
    src = base / "src"
    victim = src / "victim"
    for d in ("", "inner", "inner/more"):
        (victim / d).mkdir(parents=True, exist_ok=True)
        for i in range(60):
            (victim / d / f"f{i}.txt").write_text(f"restored {d} {i}\n")
    (victim / "keep.txt").write_text("restored over the canary?\n")
    os.symlink("f0.txt", victim / "link")
    os.chmod(victim, 0o777)
    repo = Repository.init(LocalStorage(base / "vault"), VAULT_KEY)
    result = run_backup(repo, FilesSource([str(src)]), BackupOptions("item", "dev"))
    return repo, result.snapshot_id, src


def _prepare(dest: Path, src: Path) -> Path:
    """The destination as the user left it: their own folders down to ``victim``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir()
    os.chown(dest, NOBODY, NOBODY)
    inner = dest / str(src).lstrip("/")
    inner.mkdir(parents=True)
    (inner / "victim").mkdir()
    for p in [inner / "victim", inner, *inner.parents]:
        if p == dest.parent:
            break
        os.chown(p, NOBODY, NOBODY)
    return inner


@pytest.mark.timeout(240)
def test_swapping_a_folder_for_a_symlink_never_redirects_a_root_restore(
    base: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the rounds hand every file to the file-writing process, which makes them
    through the directory descriptors it is given."""
    assert os.geteuid() == 0, "the race is root restoring into a user's tree"
    os.chown(base, 0, 0)
    repo, snapshot, src = _snapshot(base)
    before = state_of(canary)
    dest = base / "dest"
    refused = swaps = 0
    for round_no, mode in enumerate([Overwrite.OVERWRITE, Overwrite.SKIP] * (ROUNDS // 2)):
        writer_after = 0 if round_no % 4 < 2 else 1 << 30
        monkeypatch.setattr(directory_module, "_WRITER_AFTER", writer_after)
        inner = _prepare(dest, src)
        swapper, stop = attack(inner, canary, base)
        try:
            result = run_restore(repo, snapshot, DirectoryTarget(dest, overwrite=mode))
        finally:
            swaps += stop_attack(swapper, stop)
        refused += result.refused
        assert state_of(canary) == before
        assert {p.name for p in base.iterdir()} == {"canary", "dest", "src", "vault", "signals"}
    repo.close()
    # The swaps really raced the restores: the symlink was in place many times while
    # they ran, and some entries met it (refused as not directories, with a warning).
    assert swaps > 10 * ROUNDS and refused > 0, (swaps, refused)


@pytest.mark.timeout(120)
def test_an_original_paths_restore_as_root_is_not_redirected_either(
    base: Path, canary: Path
) -> None:
    """Root putting a user's own folder back where it was (``/home/bob`` style)."""
    repo, snapshot, src = _snapshot(base)
    before = state_of(canary)
    swaps = 0
    for _ in range(20):
        for p in [src, *src.rglob("*")]:
            os.chown(p, NOBODY, NOBODY, follow_symlinks=False)
        swapper, stop = attack(src, canary, base)
        try:
            run_restore(
                repo,
                snapshot,
                DirectoryTarget("", original_paths=True, overwrite=Overwrite.OVERWRITE),
                paths=[str(src)],
            )
        finally:
            swaps += stop_attack(swapper, stop)
        assert state_of(canary) == before
        assert {p.name for p in base.iterdir()} == {"canary", "src", "vault", "signals"}
    repo.close()
    assert swaps > 20


def test_an_archive_output_never_writes_through_a_planted_symlink(base: Path, canary: Path) -> None:
    repo, snapshot, _ = _snapshot(base)
    before = state_of(canary)
    out = base / "out.tar"
    os.symlink(canary / "keep.txt", out)
    for fmt in (ArchiveFormat.TAR, ArchiveFormat.ZIP, ArchiveFormat.SQFS):
        spec = TargetSpec(
            type=RestoreType.ARCHIVE_FILE,
            destination=str(out),
            archive_format=fmt,
            overwrite=Overwrite.OVERWRITE,
        )
        with pytest.raises(TargetRefusedError, match="symbolic link"), open_target(spec) as t:
            run_restore(repo, snapshot, t)
        assert os.readlink(out) == str(canary / "keep.txt")
        assert state_of(canary) == before
        assert sorted(p.name for p in base.iterdir()) == ["canary", "out.tar", "src", "vault"]
    # A symlink planted while the archive is being written is refused too, not followed.
    out.unlink()
    output = OutputFile(out)
    os.write(output.fd, b"archive bytes")
    os.symlink(canary / "keep.txt", out)
    with pytest.raises(TargetRefusedError, match="symbolic link"):
        output.commit()
    output.close()
    assert state_of(canary) == before
    assert sorted(p.name for p in base.iterdir()) == ["canary", "out.tar", "src", "vault"]
    # A directory as the output: refused, nothing left behind.
    out.unlink()
    out.mkdir()
    with pytest.raises(TargetRefusedError, match="is a directory"):
        OutputFile(out, replace=True)
    assert list(out.iterdir()) == []
    repo.close()


def _privileged_source(base: Path) -> Path:
    src = base / "psrc"
    src.mkdir()
    tool = src / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chmod(tool, 0o4755)
    capped = src / "capped"
    capped.write_bytes(b"cap")
    os.setxattr(capped, "security.capability", struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0))
    os.setxattr(capped, "user.note", b"kept")
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return src


@pytest.mark.timeout(60)
@pytest.mark.parametrize("writer_after", [1 << 30, 0])
def test_privileged_metadata_is_dropped_with_a_warning_unless_asked_for(
    base: Path, monkeypatch: pytest.MonkeyPatch, writer_after: int
) -> None:
    """``writer_after`` 0: every file is made by the file-writing process."""
    monkeypatch.setattr(directory_module, "_WRITER_AFTER", writer_after)
    src = _privileged_source(base)
    repo = Repository.init(LocalStorage(base / "vault"), VAULT_KEY)
    snapshot = run_backup(repo, FilesSource([str(src)]), BackupOptions("i", "d")).snapshot_id

    dropped: list[tuple[RestorePath, str]] = []
    plain = base / "plain"
    result = run_restore(
        repo, snapshot, DirectoryTarget(plain, on_drop=lambda p, m: dropped.append((p, m)))
    )
    got = plain / str(src).lstrip("/")
    assert stat.S_IMODE(os.lstat(got / "tool").st_mode) == 0o755
    assert os.listxattr(got / "capped") == ["user.note"]
    assert not (got / "null").exists()
    messages = [m for _, m in dropped] + [w.message for w in result.warnings]
    assert any("setuid/setgid bits dropped" in m for m in messages), messages
    assert any("security.capability dropped" in m for m in messages), messages
    assert any("device node dropped" in m for m in messages), messages
    assert result.refused == 1  # the device node, named in the warnings

    kept = base / "kept"
    result = run_restore(repo, snapshot, DirectoryTarget(kept, privileged=True))
    got = kept / str(src).lstrip("/")
    assert stat.S_IMODE(os.lstat(got / "tool").st_mode) == 0o4755
    assert sorted(os.listxattr(got / "capped")) == ["security.capability", "user.note"]
    assert stat.S_ISCHR(os.lstat(got / "null").st_mode)
    assert result.warnings == ()
    repo.close()


@pytest.mark.timeout(120)
def test_descriptor_caches_evict_and_reopen_safely(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tiny descriptor caches every directory and partly written file is closed
    and reopened (without following symlinks, checking the file is the one it made),
    while the small files go to the file-writing process with duplicates of those
    directory descriptors: the tree still restores identically."""
    monkeypatch.setattr(directory_module, "_WRITER_AFTER", 0)
    monkeypatch.setattr(directory_module, "_MAX_DIRS", 2)
    monkeypatch.setattr(directory_module, "_MAX_OPEN", 2)
    src = base / "wide"
    chain = src / "deep"
    for depth in range(40):
        chain = chain / f"d{depth}"
    chain.mkdir(parents=True)
    (chain / "bottom.txt").write_text("bottom\n")
    for d in range(30):
        folder = src / f"w{d}"
        folder.mkdir()
        (folder / "small.txt").write_text(f"small {d}\n")
        (folder / "big.bin").write_bytes(os.urandom((3 << 20) + d))  # several chunks
    repo = Repository.init(LocalStorage(base / "vault"), VAULT_KEY)
    snapshot = run_backup(repo, FilesSource([str(src)]), BackupOptions("i", "d")).snapshot_id
    dest = base / "dest"
    result = run_restore(repo, snapshot, DirectoryTarget(dest))
    repo.close()
    assert result.warnings == ()
    got = dest / str(src).lstrip("/")
    for path in src.rglob("*"):
        twin = got / path.relative_to(src)
        assert twin.is_dir() == path.is_dir(), path
        if path.is_file():
            assert twin.read_bytes() == path.read_bytes(), path
