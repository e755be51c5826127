"""The reader process: small new files are opened, stated and read by a second process,
the walk stores what it sends back, and the snapshot is what the walk alone stores."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, read_small, run_backup
from comet.agent.backup import archiver as archiver_module
from comet.agent.backup.reader import SmallFileReader
from comet.agent.cancel import CancelToken
from comet.agent.errors import CancelledError
from comet.agent.reporter import NullBackupReporter
from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import Node

OPTIONS = BackupOptions("item-1", "device-1", hostname="host")


class _Recorder(SmallFileReader):
    """A real reader that remembers what it was asked and that it was closed."""

    made: list[_Recorder] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.asked: list[str] = []
        self.closed = False
        _Recorder.made.append(self)

    def submit(self, paths: object) -> None:
        self.asked.extend(paths)  # type: ignore[arg-type]
        super().submit(paths)  # type: ignore[arg-type]

    def close(self) -> None:
        super().close()
        self.closed = True


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[_Recorder]:
    _Recorder.made = []
    monkeypatch.setattr(archiver_module, "SmallFileReader", _Recorder)
    return _Recorder


def _no_reader(*args: object) -> object:
    raise OSError("no reader process in this test")


def _tree(src: Path) -> None:
    """Files of all kinds the walk meets, with subdirectories between files; enough
    entries in each directory for the reader to be used (READER_MIN_ENTRIES)."""
    for sub in ("a", "m/inner", "z"):
        (src / sub).mkdir(parents=True)
    for i in range(50):
        for sub in ("", "a", "m", "m/inner"):
            (src / sub / f"f{i:02}").write_bytes(os.urandom(i * 37))
    (src / "m" / "big").write_bytes(os.urandom(300 << 10))  # past one chunk
    (src / "m" / "empty").write_bytes(b"")
    os.link(src / "a" / "f03", src / "m" / "hard")
    (src / "m" / "link").symlink_to("f01")
    os.mkfifo(src / "m" / "fifo")
    (src / "m" / "secret").write_bytes(b"no")
    (src / "m" / "secret").chmod(0)
    try:
        os.setxattr(src / "a" / "f05", "user.comet", b"value")
    except OSError as e:
        if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            raise


def _nodes(repo: Repository, tree_id: bytes, prefix: str = "") -> dict[str, Node]:
    out = {}
    for node in repo.load_tree(tree_id).nodes:
        out[prefix + node.name] = node
        if node.subtree is not None:
            out.update(_nodes(repo, node.subtree, prefix + node.name + "/"))
    return out


def test_the_reader_reads_new_files_and_stores_what_the_walk_alone_stores(
    tmp_path: Path, repo: Repository, recorder: type[_Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    _tree(src)
    opened: list[str] = []
    real_open = archiver_module._open_file

    def open_file(path: str) -> int:
        opened.append(os.path.relpath(path, src))
        return real_open(path)

    monkeypatch.setattr(archiver_module, "_open_file", open_file)
    with_reader = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    (reader,) = recorder.made
    assert reader.closed and reader._proc is not None and reader._proc.poll() is not None
    # What the job log (and the bench) reports of the reading process.
    assert 0 < with_reader.reader_files == reader.files <= len(reader.asked)
    assert with_reader.reader_peak_rss > 1 << 20
    # Every small regular file went to the reader; the walk opened only the others.
    assert len(reader.asked) == 4 * 50 + 4 and f"{src}/m/big" in reader.asked
    assert sorted(opened) == sorted(["m/big", "m/secret"] if os.geteuid() else ["m/big"])
    monkeypatch.setattr(archiver_module, "SmallFileReader", _no_reader)
    alone = run_backup(
        repo,
        FilesSource([str(src)]),
        BackupOptions("item-1", "device-2", hostname="host"),
    )
    assert [w.message for w in with_reader.warnings] == [w.message for w in alone.warnings]
    assert (with_reader.files, with_reader.total_bytes, with_reader.bytes_read) == (
        alone.files,
        alone.total_bytes,
        alone.bytes_read,
    )
    tree = repo.load_snapshot(with_reader.snapshot_id).tree
    assert tree == repo.load_snapshot(alone.snapshot_id).tree
    nodes = _nodes(repo, tree)
    sub = str(src).strip("/") + "/"
    stored = b"".join(repo.read_blob(BlobType.DATA, b) for b in nodes[sub + "a/f07"].content)
    assert stored == (src / "a" / "f07").read_bytes()
    assert nodes[sub + "m/hard"].content == nodes[sub + "a/f03"].content


def test_a_file_that_grows_while_the_reader_reads_it_is_read_whole_and_reported(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"start")
    fd = os.open(path, os.O_RDONLY)
    try:
        with open(path, "ab") as f:  # after the fstat the size 5 came from
            f.write(b"more")
        data, one_read = read_small.read_whole(fd, 5, 1 << 10)
        assert (data, one_read) == (b"startmore", False)
        os.lseek(fd, 0, os.SEEK_SET)
        data, one_read = read_small.read_whole(fd, 4, 8)  # reaches the limit: stops
        assert len(data) == 8 and not one_read
    finally:
        os.close(fd)


def test_the_walk_goes_on_without_answers_when_the_reader_process_dies(
    tmp_path: Path, repo: Repository, recorder: type[_Recorder]
) -> None:
    src = tmp_path / "src"
    _tree(src)

    class Killer(NullBackupReporter):
        started = 0

        def file_started(self, path: str, size: int) -> None:
            self.started += 1
            if self.started == 20:
                pid = recorder.made[0].pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)

    result = run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=Killer())
    assert result.files == 4 * 50 + 4 - (1 if os.geteuid() else 0)  # "secret" if readable
    assert [w.path for w in result.warnings] == ([f"{src}/m/secret"] if os.geteuid() else [])
    nodes = _nodes(repo, repo.load_snapshot(result.snapshot_id).tree)
    node = nodes[str(src).strip("/") + "/m/inner/f39"]
    stored = b"".join(repo.read_blob(BlobType.DATA, b) for b in node.content)
    assert stored == (src / "m" / "inner" / "f39").read_bytes()


def test_a_cancel_in_the_middle_of_a_directory_ends_the_reader(
    tmp_path: Path, repo: Repository, recorder: type[_Recorder]
) -> None:
    src = tmp_path / "src"
    _tree(src)
    cancel = CancelToken()

    class Reporter(NullBackupReporter):
        started = 0

        def file_started(self, path: str, size: int) -> None:
            self.started += 1
            if self.started == 50:  # in the middle of a directory, answers owed
                cancel.cancel()

    with pytest.raises(CancelledError):
        run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=Reporter(), cancel=cancel)
    (reader,) = recorder.made
    assert reader.closed and reader._proc is not None and reader._proc.poll() is not None


def test_excluded_files_are_not_asked_of_the_reader(
    tmp_path: Path, repo: Repository, recorder: type[_Recorder]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(70):
        (src / f"f{i:02}.{'tmp' if i % 3 else 'bin'}").write_bytes(b"x" * i)
    result = run_backup(repo, FilesSource([str(src)], excludes=["*.tmp"]), OPTIONS)
    kept = sorted(str(p) for p in src.iterdir() if p.suffix == ".bin")
    assert sorted(recorder.made[0].asked) == kept and result.files == len(kept) == 24


def test_nothing_to_read_starts_no_process(
    tmp_path: Path, repo: Repository, recorder: type[_Recorder]
) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(archiver_module.READER_MIN_ENTRIES):
        (src / "d" / f"f{i}").write_bytes(b"x")
    run_backup(repo, FilesSource([str(src)]), OPTIONS)
    again = run_backup(repo, FilesSource([str(src)]), OPTIONS)  # nothing new
    assert again.files == archiver_module.READER_MIN_ENTRIES and recorder.made[1].pid is None
    assert recorder.made[0].pid is not None


def test_small_directories_are_read_by_the_walk(
    tmp_path: Path, repo: Repository, recorder: type[_Recorder]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(archiver_module.READER_MIN_ENTRIES - 1):
        (src / f"f{i}").write_bytes(b"x")
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert result.files == archiver_module.READER_MIN_ENTRIES - 1
    assert recorder.made[0].pid is None  # never started
