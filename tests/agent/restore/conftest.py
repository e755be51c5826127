"""Fixtures for restore tests: a repository on local storage and a rich source tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comet.agent.repository import Repository
from comet.agent.storage.local import LocalStorage

VAULT_KEY = b"r" * 32


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(LocalStorage(tmp_path / "vault"), VAULT_KEY)


def xattrs_supported(path: Path) -> bool:
    probe = path / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.comet-probe", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


@pytest.fixture
def rich_tree(tmp_path: Path) -> Path:
    """Unicode names, empty file/dir, symlinks, hard links, a sparse file, a fifo,
    xattrs, a 20 MiB random file and a 30 MiB compressible text file."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ünïcødé ✓ 名前.txt").write_text("grüße\n")
    (src / os.fsdecode(b"latin1-\xe9")).write_bytes(b"not utf-8 name")
    (src / "empty").write_bytes(b"")
    (src / "empty dir").mkdir()
    deep = src / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_text("deep")
    os.symlink("a/b/c/deep.txt", src / "link-rel")
    os.symlink("/nonexistent/target", src / "link-dangling")
    (src / "hard1").write_bytes(b"shared inode\n" * 1000)
    os.link(src / "hard1", src / "a" / "hard2")
    with open(src / "sparse.img", "wb") as f:
        f.truncate(24 << 20)
        f.seek(10 << 20)
        f.write(os.urandom(100_000))
    os.mkfifo(src / "fifo")
    (src / "random.bin").write_bytes(os.urandom(20 << 20))
    line = b"The quick brown fox jumps over the lazy dog, 0123456789.\n"
    (src / "text.log").write_bytes(line * ((30 << 20) // len(line)))
    os.chmod(src / "empty", 0o640)
    os.chmod(src / "a" / "b", 0o750)
    os.utime(src / "empty dir", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    os.utime(src / "link-rel", ns=(1_500_000_000_000_000_001,) * 2, follow_symlinks=False)
    if xattrs_supported(src):
        os.setxattr(src / "hard1", "user.comet", b"value\0bin")
        os.setxattr(src / "a", "user.dir", b"d")
    return src


@pytest.fixture(params=["in-process", "writer"])
def both_writers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test twice: directory restores making files themselves, and handing every
    file to the file-writing process from the first (``restore/writer.py``)."""
    from comet.agent.restore import directory

    if request.param == "writer":
        monkeypatch.setattr(directory, "_WRITER_AFTER", 0)
    return str(request.param)
