"""The file-writing process of directory restores (``restore/writer.py``): files it makes
are the same as the ones DirectoryTarget makes itself; a file it fails is a warning
naming that file, never a silent loss; its death fails the restore with a sentence, not
a hang; a cancelled restore leaves no temporary files."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.cancel import CancelToken
from comet.agent.errors import CancelledError
from comet.agent.repository import Repository
from comet.agent.restore import DirectoryTarget, Overwrite, run_restore
from comet.agent.restore import directory as directory_module
from comet.agent.restore import writer as writer_module
from comet.agent.restore.writer import FileWriter, WriterStoppedError
from tests.agent.restore.compare import compare_trees

OPTIONS = BackupOptions("item", "device")
_MTIME = 1_500_000_000_987_654_321


class _CountingWriter(FileWriter):
    made: list[_CountingWriter] = []

    def __init__(self) -> None:
        super().__init__()
        self.added = 0
        _CountingWriter.made.append(self)

    def add(self, *args: object, **kwargs: object) -> None:
        self.added += 1
        super().add(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[_CountingWriter]:
    _CountingWriter.made = []
    monkeypatch.setattr(directory_module, "FileWriter", _CountingWriter)
    return _CountingWriter


def _small_files(root: Path, count: int) -> Path:
    """``count`` small files in a few folders: empty ones, ones with a 4 KiB zero run
    (restored with a hole), modes the umask would change, other owners (as root) and
    fixed mtimes."""
    src = root / "small"
    for i in range(count):
        folder = src / f"d{i % 7}" / f"e{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{i}.dat"
        if i % 50 == 0:
            data = b""
        elif i % 17 == 0:
            data = os.urandom(100) + bytes(3 * 4096) + os.urandom(i)
        else:
            data = os.urandom(i % 3000 + 1)
        path.write_bytes(data)
        os.chmod(path, (0o600, 0o644, 0o755, 0o666, 0o400)[i % 5])
        if i % 3 == 0 and os.geteuid() == 0:
            os.chown(path, 65534, 65534 - i % 2)  # restored by fchown, as root
        os.utime(path, ns=(_MTIME + i, _MTIME + i))
    return src


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".comet-" in p.name]


@pytest.mark.timeout(120)
def test_many_small_files_restore_the_same_through_the_writer(
    tmp_path: Path, repo: Repository, counting: type[_CountingWriter]
) -> None:
    """1,500 files: the first ones made in-process, the rest by the writer (started
    after ``_WRITER_AFTER``); the tree is identical either way."""
    src = _small_files(tmp_path, 1_500)
    snapshot = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    dest = tmp_path / "dest"
    result = run_restore(repo, snapshot, DirectoryTarget(dest))
    assert result.warnings == () and result.files == 1_500
    assert len(counting.made) == 1
    # Files before the writer started were made in-process (empty ones are not counted
    # towards starting it: 30 of them).
    handed_over = 1_500 - directory_module._WRITER_AFTER
    assert handed_over - 30 <= counting.made[0].added <= handed_over
    out = dest / str(src).lstrip("/")
    compare_trees(src, out)
    for path in src.rglob("*.dat"):
        st, new = path.stat(), (out / path.relative_to(src)).stat()
        assert (st.st_uid, st.st_gid) == (new.st_uid, new.st_gid), path
    assert not _temp_files(dest)


@pytest.mark.timeout(120)
def test_rich_tree_through_the_writer_with_overwrite(
    tmp_path: Path,
    repo: Repository,
    rich_tree: Path,
    monkeypatch: pytest.MonkeyPatch,
    counting: type[_CountingWriter],
) -> None:
    """Every file handed over from the first: hard links to handed-over files, empty
    files, sparse files, xattrs; then the same restore over it (overwrite), which
    replaces each file by rename."""
    monkeypatch.setattr(directory_module, "_WRITER_AFTER", 0)
    snapshot = run_backup(repo, FilesSource([str(rich_tree)]), OPTIONS).snapshot_id
    dest = tmp_path / "dest"
    for overwrite in (Overwrite.SKIP, Overwrite.OVERWRITE):
        result = run_restore(repo, snapshot, DirectoryTarget(dest, overwrite=overwrite))
        assert result.warnings == ()
        out = dest / str(rich_tree).lstrip("/")
        compare_trees(rich_tree, out, xattrs=True)
        assert out.joinpath("hard1").stat().st_ino == out.joinpath("a", "hard2").stat().st_ino
    assert all(w.added > 0 for w in counting.made) and len(counting.made) == 2
    assert not _temp_files(dest)


@pytest.mark.timeout(120)
def test_a_killed_writer_fails_the_restore_with_a_sentence(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL of the writer after its first batch: the restore ends with
    WriterStoppedError saying what happened (no hang, no success), and the snapshot
    restores completely afterwards."""
    monkeypatch.setattr(directory_module, "_WRITER_AFTER", 0)
    monkeypatch.setattr(writer_module, "_BATCH_FILES", 16)
    src = _small_files(tmp_path, 400)
    snapshot = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id

    class _Killed(FileWriter):
        def flush(self) -> None:
            super().flush()
            if self._sent == 1:
                os.kill(self.pid, signal.SIGKILL)
                self._proc.wait()

    monkeypatch.setattr(directory_module, "FileWriter", _Killed)
    with pytest.raises(WriterStoppedError, match=r"ended with status -9.*run the restore again"):
        run_restore(repo, snapshot, DirectoryTarget(tmp_path / "first"))

    monkeypatch.setattr(directory_module, "FileWriter", FileWriter)
    result = run_restore(repo, snapshot, DirectoryTarget(tmp_path / "second"))
    assert result.warnings == () and result.files == 400
    compare_trees(src, tmp_path / "second" / str(src).lstrip("/"))


@pytest.mark.timeout(120)
def test_a_cancelled_restore_stops_the_writer_and_leaves_no_temporary_files(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(directory_module, "_WRITER_AFTER", 0)
    src = _small_files(tmp_path, 2_000)
    snapshot = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    token = CancelToken()
    target = DirectoryTarget(tmp_path / "dest")
    real_add = FileWriter.add
    added = [0]

    def add_then_cancel(self: FileWriter, *args: object, **kwargs: object) -> None:
        real_add(self, *args, **kwargs)  # type: ignore[arg-type]
        added[0] += 1
        if added[0] == 700:
            token.cancel()

    monkeypatch.setattr(FileWriter, "add", add_then_cancel)
    with pytest.raises(CancelledError):
        run_restore(repo, snapshot, target, cancel=token)
    assert target._writer is None  # closed, and its process waited for
    assert not _temp_files(tmp_path / "dest")
    made = [p for p in (tmp_path / "dest").rglob("*.dat")]
    assert 0 < len(made) < 2_000


_LIMITED_RESTORE = textwrap.dedent(
    """
    import json, resource, signal, sys
    from comet.agent.repository import Repository
    from comet.agent.restore import DirectoryTarget, run_restore
    from comet.agent.restore import directory
    from comet.agent.storage.local import LocalStorage

    vault, snapshot, dest, limit = sys.argv[1:5]
    directory._WRITER_AFTER = 0
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    repo = Repository.open(LocalStorage(vault), b"r" * 32)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), resource.RLIM_INFINITY))
    result = run_restore(repo, snapshot, DirectoryTarget(dest))
    print(json.dumps({"files": result.files, "refused": result.refused,
                      "warnings": [[w.path, w.message] for w in result.warnings]}))
    """
)


@pytest.mark.timeout(120)
def test_a_file_the_writer_cannot_make_is_a_warning_naming_it(
    tmp_path: Path, repo: Repository
) -> None:
    """A file-size limit (RLIMIT_FSIZE, inherited by the writer) fails every file above
    it: each is a warning naming it, is not counted as restored, and leaves neither a
    file nor a temporary one; the others are restored."""
    src = tmp_path / "src"
    src.mkdir()
    sizes = {f"f{i}": (i * 997) % 9000 for i in range(300)}
    for name, size in sizes.items():
        (src / name).write_bytes(os.urandom(size))
    snapshot = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    snapshot_hex = snapshot if isinstance(snapshot, str) else snapshot.hex()
    repo.close()
    dest = tmp_path / "dest"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _LIMITED_RESTORE,
            str(tmp_path / "vault"),
            snapshot_hex,
            str(dest),
            "5000",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    too_big = {name for name, size in sizes.items() if size > 5000}
    assert too_big and result["refused"] == len(too_big)
    assert result["files"] == len(sizes) - len(too_big)
    warned = {Path(path).name: message for path, message in result["warnings"]}
    assert set(warned) == too_big
    assert all("not restored" in m and "too large" in m.lower() for m in warned.values()), warned
    out = dest / str(src).lstrip("/")
    assert {p.name for p in out.iterdir()} == set(sizes) - too_big
    for name in set(sizes) - too_big:
        assert (out / name).read_bytes() == (src / name).read_bytes()
        assert stat.S_IMODE((out / name).stat().st_mode) == stat.S_IMODE(
            (src / name).stat().st_mode
        )


_KILLED_RESTORE = textwrap.dedent(
    """
    import sys, time
    from comet.agent.repository import Repository
    from comet.agent.restore import DirectoryTarget, run_restore
    from comet.agent.restore import directory, writer
    from comet.agent.storage.local import LocalStorage

    vault, snapshot, dest = sys.argv[1:4]
    directory._WRITER_AFTER = 0
    writer._BATCH_FILES = 8

    class Announced(writer.FileWriter):
        def flush(self):
            super().flush()
            if self._sent == 1:
                print(self.pid, flush=True)
                time.sleep(60)  # killed here, with files on their way

    directory.FileWriter = Announced
    run_restore(Repository.open(LocalStorage(vault), b"r" * 32), snapshot, DirectoryTarget(dest))
    """
)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.timeout(60)
def test_the_writer_ends_when_the_agent_is_killed(tmp_path: Path, repo: Repository) -> None:
    """SIGKILL of the restoring process (the agent) while files are on their way: the
    writer finishes what it has, sees the socket close and exits; nothing is left
    running, and no temporary file outlives the files it was making."""
    src = _small_files(tmp_path, 300)
    snapshot = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    snapshot_hex = snapshot if isinstance(snapshot, str) else snapshot.hex()
    repo.close()
    dest = tmp_path / "dest"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RESTORE, str(tmp_path / "vault"), snapshot_hex, str(dest)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        writer_pid = int(proc.stdout.readline())
        assert _running(writer_pid)
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
    deadline = time.monotonic() + 20
    while _running(writer_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(writer_pid), "the writer outlived the process that started it"
    made = list(dest.rglob("*.dat"))
    assert made, "the files sent before the kill were made"
    assert not _temp_files(dest)


@pytest.mark.timeout(120)
def test_batches_larger_than_the_socket_go_in_pieces(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket buffer of a few KiB and batches of up to 1 MiB: every send is partial
    and the parent waits for room (reading acknowledgements meanwhile); the
    tree still restores exactly."""
    monkeypatch.setattr(directory_module, "_WRITER_AFTER", 0)
    monkeypatch.setattr(writer_module, "_SOCKET_BUFFER", 4096)
    monkeypatch.setattr(writer_module, "_BATCH_BYTES", 1 << 20)
    waits = [0]
    real_wait = FileWriter._wait

    def counted(self: FileWriter, *, writable: bool) -> None:
        waits[0] += writable
        real_wait(self, writable=writable)

    monkeypatch.setattr(FileWriter, "_wait", counted)
    src = _small_files(tmp_path, 600)
    snapshot = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    result = run_restore(repo, snapshot, DirectoryTarget(tmp_path / "dest"))
    assert result.warnings == () and result.files == 600
    assert waits[0] > 0  # a batch is far larger than the buffer: it went in pieces
    compare_trees(src, tmp_path / "dest" / str(src).lstrip("/"))
