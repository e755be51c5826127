"""New files are opened straight from the directory listing (no ``lstat`` first):
their nodes are what the stat-first way gives, and an entry that turns out not to be
a regular file when opened is saved the stat-first way, as what it is."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.backup import archiver as archiver_module
from comet.agent.cancel import CancelToken
from comet.agent.errors import CancelledError
from comet.agent.reporter import NullBackupReporter
from comet.agent.repository import Repository
from comet.agent.repository.tree import Node, NodeType

OPTIONS = BackupOptions("item-1", "device-1", hostname="host")


def _no_reader(*args: object) -> object:
    raise OSError("no reader process in this test")


def _files(repo: Repository, snapshot_id: bytes, src: Path) -> dict[str, Node]:
    tree = repo.load_tree(repo.load_snapshot(snapshot_id).tree)
    for name in src.parts[1:]:
        (node,) = [n for n in tree.nodes if n.name == name]
        assert node.subtree is not None
        tree = repo.load_tree(node.subtree)
    return {n.name: n for n in tree.nodes}


def _set_xattr(path: Path) -> bool:
    try:
        os.setxattr(path, "user.comet", b"value")
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    return True


def test_new_files_are_saved_without_a_stat_first(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(os.urandom(i * 1000))
    (src / "f4").chmod(0o640)
    os.link(src / "f3", src / "hard")
    has_xattr = _set_xattr(src / "f1")
    stated: list[str] = []
    real_lstat = os.lstat

    def lstat(path: str, *args: object, **kwargs: object) -> os.stat_result:
        stated.append(str(path))
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archiver_module.os, "lstat", lstat)
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    monkeypatch.undo()
    assert not result.warnings and result.files == 6
    assert not [p for p in stated if p.startswith(str(src) + "/")]
    nodes = _files(repo, result.snapshot_id, src)
    for name, node in nodes.items():
        st = os.lstat(src / name)
        assert node.type == NodeType.FILE
        assert (node.mode, node.uid, node.gid, node.size, node.nlink) == (
            st.st_mode & 0o7777,
            st.st_uid,
            st.st_gid,
            st.st_size,
            st.st_nlink,
        )
        assert (node.mtime_ns, node.ctime_ns, node.inode, node.dev) == (
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_dev,
        )
    assert nodes["hard"].content == nodes["f3"].content
    assert (nodes["hard"].link is None) != (nodes["f3"].link is None)
    if has_xattr:
        assert nodes["f1"].xattrs == (("user.comet", b"value"),)
    # A rescan opens every file the same way and stores the same tree.
    rescan = run_backup(
        repo,
        FilesSource([str(src)]),
        BackupOptions("item-1", "device-1", hostname="host", rescan_unchanged=True),
    )
    assert (
        repo.load_snapshot(rescan.snapshot_id).tree == repo.load_snapshot(result.snapshot_id).tree
    )


@pytest.mark.parametrize("reader", [True, False], ids=["reader", "walk"])
def test_an_entry_listed_as_a_file_but_something_else_is_saved_as_what_it_is(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch, reader: bool
) -> None:
    """With the reader process, each such entry is answered None among files it read
    (the answers after it are held while the walk descends into "dir")."""
    if not reader:
        monkeypatch.setattr(archiver_module, "SmallFileReader", _no_reader)
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "inner").write_bytes(b"inner")
    for name in ("a", "c", "e", "g"):
        (src / name).write_bytes(name.encode())
    for i in range(archiver_module.READER_MIN_ENTRIES):  # enough for the reader
        (src / f"p{i:02}").write_bytes(b"p")
    (src / "file").write_bytes(b"content")
    (src / "link").symlink_to("file")
    (src / "dangling").symlink_to("nowhere")
    os.mkfifo(src / "fifo")
    first = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    # The listing's type and the object differ when an entry is replaced in between:
    # here every entry is "listed" as a regular file, and a rescan tries to open each.
    monkeypatch.setattr(archiver_module, "_listed_regular", lambda entry: True)
    opened: list[str] = []
    real_open = archiver_module._open_file

    def open_file(path: str) -> int:
        opened.append(os.path.basename(path))
        return real_open(path)

    monkeypatch.setattr(archiver_module, "_open_file", open_file)
    again = run_backup(
        repo,
        FilesSource([str(src)]),
        BackupOptions("item-1", "device-1", hostname="host", rescan_unchanged=True),
    )
    assert not first.warnings and not again.warnings
    # The walk opens what the reader could not read as a small regular file.
    expected_opened = {"dir", "link", "dangling", "fifo"}
    if not reader:
        expected_opened |= {"file", "inner", "a"}
    assert expected_opened <= set(opened)
    # The same nodes, so the same tree ids, as the stat-first way stored.
    assert repo.load_snapshot(again.snapshot_id).tree == repo.load_snapshot(first.snapshot_id).tree
    types = {
        n.name: n.type
        for n in _files(repo, again.snapshot_id, src).values()
        if not n.name.startswith("p")
    }
    assert types == {
        "dir": NodeType.DIR,
        "file": NodeType.FILE,
        "link": NodeType.SYMLINK,
        "dangling": NodeType.SYMLINK,
        "fifo": NodeType.FIFO,
        "a": NodeType.FILE,
        "c": NodeType.FILE,
        "e": NodeType.FILE,
        "g": NodeType.FILE,
    }


def test_files_are_asked_for_ahead_and_no_descriptor_outlives_its_directory(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The walk's own opening ahead (without a reader process; test_reader has its).
    monkeypatch.setattr(archiver_module, "SmallFileReader", _no_reader)
    src = tmp_path / "src"
    for sub in ("a", "m/inner", "z"):
        (src / sub).mkdir(parents=True)
    for i in range(80):
        for sub in ("", "a", "m", "m/inner"):
            (src / sub / f"f{i:02}").write_bytes(os.urandom(i * 10))
    open_fds: dict[int, str] = {}
    overlaps: list[tuple[str, set[str]]] = []
    advised: list[int] = []
    real_open, real_close, real_fadvise = archiver_module._open_file, os.close, os.posix_fadvise

    def open_file(path: str) -> int:
        here = os.path.dirname(path)
        if any(d != here for d in open_fds.values()):
            overlaps.append((path, set(open_fds.values())))
        fd = real_open(path)
        open_fds[fd] = here
        return fd

    def close(fd: int) -> None:
        open_fds.pop(fd, None)
        real_close(fd)

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_WILLNEED and fd in open_fds:
            advised.append(fd)
        real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(archiver_module, "_open_file", open_file)
    monkeypatch.setattr(archiver_module.os, "close", close)
    monkeypatch.setattr(archiver_module.os, "posix_fadvise", fadvise)
    cancel = CancelToken()

    class Reporter(NullBackupReporter):
        started = 0

        def file_started(self, path: str, size: int) -> None:
            self.started += 1
            if self.started == 150:  # in the middle of a directory, files open ahead
                cancel.cancel()

    with pytest.raises(CancelledError):
        run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=Reporter(), cancel=cancel)
    assert not open_fds  # what was opened ahead was closed when the walk stopped
    assert len(advised) > 150
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert not open_fds and result.files == 320 and not result.warnings
    assert not overlaps  # nothing held open while the walk was in another directory


def test_excluded_files_are_not_opened_ahead(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The walk's own opening ahead (without a reader process; test_reader has its).
    monkeypatch.setattr(archiver_module, "SmallFileReader", _no_reader)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(70):
        (src / f"f{i:02}.{'tmp' if i % 3 else 'bin'}").write_bytes(b"x" * i)
    opened: list[str] = []
    real_open = archiver_module._open_file

    def open_file(path: str) -> int:
        opened.append(os.path.basename(path))
        return real_open(path)

    monkeypatch.setattr(archiver_module, "_open_file", open_file)
    result = run_backup(repo, FilesSource([str(src)], excludes=["*.tmp"]), OPTIONS)
    kept = sorted(p.name for p in src.iterdir() if p.suffix == ".bin")
    assert sorted(opened) == kept and result.files == len(kept) == 24
    assert sorted(_files(repo, result.snapshot_id, src)) == kept
