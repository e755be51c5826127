"""Backup engine: incremental, warnings, program output, cancel, concurrency."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, ProgramSource, run_backup
from comet.agent.backup import archiver as archiver_module
from comet.agent.cancel import CancelToken
from comet.agent.errors import CancelledError, ProgramFailedError, SourceError
from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import NodeType, Tree
from comet.agent.restore import SimulateTarget, run_restore
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.memory import MemoryStorage
from tests.agent.backup.conftest import VAULT_KEY, CountingReporter

OPTIONS = BackupOptions("item-1", "device-1", hostname="host")


def _no_reader(*args: object) -> object:
    raise OSError("no reader process in this test")


def _tree(root: Path) -> Path:
    src = root / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.bin").write_bytes(os.urandom(3 << 20))
    (src / "docs" / "b.txt").write_bytes(b"line of text\n" * 200_000)
    (src / "c.bin").write_bytes(os.urandom(2 << 20))
    (src / "skip.tmp").write_bytes(b"excluded")
    return src


def test_second_backup_reads_and_uploads_nothing(tmp_path: Path, repo: Repository) -> None:
    src = _tree(tmp_path)
    first = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert first.files == 4 and first.uploaded_bytes > 0 and not first.warnings
    reporter = CountingReporter()
    second = run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=reporter)
    assert second.parent_id == first.snapshot_id
    assert second.bytes_read == 0 and reporter.read == 0 and reporter.started == []
    assert len(reporter.unchanged) == 4
    # The parent's size is the progress estimate (ETA) of the second backup.
    assert reporter.expected_sizes == [(first.total_bytes, first.files)]
    # Only tree blobs of include-path ancestors (/tmp, ...) may change: other processes
    # touch those directories. The source's own trees are reused as they were.
    assert second.uploaded_bytes < 4096
    first_root = repo.load_tree(repo.load_snapshot(first.snapshot_id).tree)
    second_root = repo.load_tree(repo.load_snapshot(second.snapshot_id).tree)
    assert _subtree_id(repo, first_root, src) == _subtree_id(repo, second_root, src)


def _subtree_id(repo: Repository, root: Tree, path: Path) -> bytes | None:
    tree: Tree | None = root
    subtree = None
    for name in path.parts[1:]:
        assert tree is not None
        (node,) = [n for n in tree.nodes if n.name == name]
        subtree = node.subtree
        tree = repo.load_tree(subtree) if subtree else None
    return subtree


def test_changed_file_uploads_only_its_chunks(tmp_path: Path, repo: Repository) -> None:
    src = _tree(tmp_path)
    run_backup(repo, FilesSource([str(src)]), OPTIONS)
    (src / "c.bin").write_bytes(os.urandom(2 << 20))
    reporter = CountingReporter()
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=reporter)
    assert reporter.started == [str(src / "c.bin")]
    assert result.bytes_read == 2 << 20
    # the new random content plus a few small tree blobs and pack/index framing
    assert (2 << 20) <= result.uploaded_bytes < (2 << 20) + 64 * 1024


def test_rescan_unchanged_reads_everything(tmp_path: Path, repo: Repository) -> None:
    src = _tree(tmp_path)
    first = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    opts = BackupOptions("item-1", "device-1", rescan_unchanged=True)
    again = run_backup(repo, FilesSource([str(src)]), opts)
    assert again.bytes_read == first.bytes_read and again.uploaded_bytes < 4096


def test_excludes_and_snapshot_record(tmp_path: Path, repo: Repository) -> None:
    src = _tree(tmp_path)
    source = FilesSource([str(src)], excludes=["*.tmp"], exclude_regexes=[r"/docs/a\.bin$"])
    result = run_backup(repo, source, BackupOptions("i", "d", tags=("t",), hostname="h"))
    snap = repo.load_snapshot(result.snapshot_id)
    assert snap.paths == (str(src),) and snap.item_id == "i" and snap.device_id == "d"
    assert snap.hostname == "h" and snap.tags == ("t",) and snap.files == 2
    target = SimulateTarget()
    run_restore(repo, result.snapshot_id, target)
    assert sorted(target.files) == [str(src / "c.bin"), str(src / "docs" / "b.txt")]


def test_relative_include_is_refused(repo: Repository) -> None:
    with pytest.raises(SourceError):
        run_backup(repo, FilesSource(["relative/path"]), OPTIONS)


def test_vanished_and_unreadable_files_are_warnings(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tree(tmp_path)
    real_open = os.open
    # Running as root, permissions do not stop reads: inject the failures at open().

    def failing_open(path: str, flags: int, *args: int) -> int:
        if path.endswith("c.bin"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        if path.endswith("b.txt"):
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(archiver_module.os, "open", failing_open)
    result = run_backup(repo, FilesSource([str(src), str(tmp_path / "missing")]), OPTIONS)
    messages = {w.path: w.message for w in result.warnings}
    assert "cannot open" in messages[str(src / "c.bin")]
    assert "vanished" in messages[str(src / "docs" / "b.txt")]
    # An include path that is not there may never have existed: not "vanished".
    assert "does not exist on this device" in messages[str(tmp_path / "missing")]
    snap = repo.load_snapshot(result.snapshot_id)
    assert snap.warnings == 3 and snap.files == 2


def test_file_changing_while_read_is_a_warning(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    src.mkdir()
    path = src / "grows.bin"
    path.write_bytes(os.urandom(6 << 20))

    class Appender(CountingReporter):
        def bytes_read(self, count: int) -> None:
            with open(path, "ab") as f:
                f.write(b"more")

    result = run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=Appender())
    assert any("changed while being read" in w.message for w in result.warnings)
    assert repo.list_snapshots()


def test_small_files_that_grow_before_they_are_read_are_stored_whole(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file below one chunk is read with a buffer of its fstat size: one that grows a
    little, or past a chunk, between that fstat and the read is still stored whole.
    The walk reads the files itself here (no reader process), so the reporter's call
    falls between the two; the reader's side is test_reader's."""
    monkeypatch.setattr(archiver_module, "SmallFileReader", _no_reader)
    src = tmp_path / "src"
    src.mkdir()
    grown = {"little.bin": os.urandom(100), "past.bin": os.urandom(300 << 10)}
    for name in grown:
        (src / name).write_bytes(b"start")
    (src / "empty").write_bytes(b"")

    class Grower(CountingReporter):
        def file_started(self, path: str, size: int) -> None:
            super().file_started(path, size)
            name = os.path.basename(path)
            if name in grown:
                with open(path, "ab") as f:
                    f.write(grown[name])

    result = run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=Grower())
    root = repo.load_tree(repo.load_snapshot(result.snapshot_id).tree)
    for name in str(src).strip("/").split("/"):
        node = next(n for n in root.nodes if n.name == name)
        assert node.subtree is not None
        root = repo.load_tree(node.subtree)
    stored = {
        n.name: b"".join(repo.read_blob(BlobType.DATA, b) for b in n.content) for n in root.nodes
    }
    assert stored == {
        name: (src / name).read_bytes() for name in ("little.bin", "past.bin", "empty")
    }
    assert stored["past.bin"] == b"start" + grown["past.bin"]


def test_program_source(repo: Repository) -> None:
    command = "head -c 3000000 /dev/zero | tr '\\0' 'x'; echo careful >&2"
    result = run_backup(repo, ProgramSource(command, "dump.sql"), OPTIONS)
    assert [w.message for w in result.warnings] == ["the program wrote to stderr: careful"]
    snap = repo.load_snapshot(result.snapshot_id)
    assert snap.program == (command,) and snap.paths == ()
    (node,) = repo.load_tree(snap.tree).nodes
    assert node.name == "dump.sql" and node.type == NodeType.FILE and node.size == 3_000_000
    target = SimulateTarget()
    run_restore(repo, result.snapshot_id, target)
    assert target.files["/dump.sql"].size == 3_000_000


def test_program_failure_writes_no_snapshot(repo: Repository) -> None:
    with pytest.raises(ProgramFailedError, match="status 3"):
        run_backup(repo, ProgramSource(["sh", "-c", "echo out; exit 3"], "x"), OPTIONS)
    with pytest.raises(ProgramFailedError):
        run_backup(repo, ProgramSource(["/nonexistent/program"], "x"), OPTIONS)
    assert repo.list_snapshots() == []


def test_cancel_writes_no_snapshot(tmp_path: Path, storage: MemoryStorage) -> None:
    repo = Repository.init(storage, VAULT_KEY)
    src = _tree(tmp_path)
    token = CancelToken()

    class Canceller(CountingReporter):
        def bytes_read(self, count: int) -> None:
            token.cancel("by test")

    with pytest.raises(CancelledError):
        run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=Canceller(), cancel=token)
    assert repo.list_snapshots() == []
    assert not list(storage.list("locks/"))


def test_two_concurrent_backups_both_commit_and_dedup(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    Repository.init(LocalStorage(vault), VAULT_KEY)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "common.bin").write_bytes(os.urandom(4 << 20))
    seed = Repository.open(LocalStorage(vault), VAULT_KEY)
    first = run_backup(seed, FilesSource([str(shared)]), BackupOptions("seed", "d0"))

    sources = []
    for name in ("one", "two"):
        d = tmp_path / name
        d.mkdir()
        (d / "own.bin").write_bytes(os.urandom(3 << 20))
        (d / "common.bin").write_bytes((shared / "common.bin").read_bytes())
        sources.append(d)
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def backup(name: str, src: Path) -> None:
        repo = Repository.open(LocalStorage(vault), VAULT_KEY)  # as if another process
        barrier.wait()
        try:
            results[name] = run_backup(repo, FilesSource([str(src)]), BackupOptions(name, name))
        except Exception as e:
            results[name] = e

    threads = [
        threading.Thread(target=backup, args=(n, s))
        for n, s in zip(("one", "two"), sources, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    final = Repository.open(LocalStorage(vault), VAULT_KEY)
    assert len(final.list_snapshots()) == 3
    for name, src in zip(("one", "two"), sources, strict=True):
        result = results[name]
        assert not isinstance(result, Exception), result
        assert result.uploaded_bytes < (3 << 20) + 64 * 1024  # common.bin was deduplicated
        target = SimulateTarget()
        run_restore(final, result.snapshot_id, target)
        assert target.files[str(src / "common.bin")].size == 4 << 20
    assert first.uploaded_bytes >= 4 << 20
