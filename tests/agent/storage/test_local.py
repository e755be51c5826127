"""LocalStorage beyond the shared contract: crash safety and OS error mapping."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from comet.agent.storage.base import TEMP_MARKER, ObjectNotFoundError, StorageError
from comet.agent.storage.local import LocalStorage


def test_crash_during_put_leaves_no_visible_object(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    LocalStorage(root).put("data/aa/old", b"old")
    # A real process dies (os._exit, no cleanup) right after the data is written to
    # the temp file and before the rename.
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from comet.agent.storage.local import LocalStorage

        os.fsync = lambda fd: os._exit(17)
        storage = LocalStorage(Path({str(root)!r}))
        storage.put("data/aa/new", b"n" * 100_000)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert result.returncode == 17
    leftovers = [p.name for p in (root / "data" / "aa").iterdir()]
    assert any(TEMP_MARKER in name for name in leftovers), "the crash happened mid-put"

    storage = LocalStorage(root)
    assert {info.key for info in storage.list()} == {"data/aa/old"}
    with pytest.raises(ObjectNotFoundError):
        storage.get("data/aa/new")
    with pytest.raises(ObjectNotFoundError):
        storage.stat("data/aa/new")


def test_disk_full_is_reported_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("k", b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError, match="disk is full") as info:
        storage.put("k", b"new")
    assert isinstance(info.value.__cause__, OSError)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["k"]
    assert storage.get("k") == b"old"


def test_leftover_temp_files_are_removed_once_older_than_asked(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("data/ab/pack", b"x")
    old = tmp_path / "data" / "ab" / "pack.comet-tmp~0123456789abcdef"
    young = tmp_path / "data" / "ab" / "other.comet-tmp~fedcba9876543210"
    old.write_bytes(b"partial")
    young.write_bytes(b"partial")
    now = storage.stat("data/ab/pack").mtime_ns
    assert now is not None
    os.utime(old, ns=(now - 10**12, now - 10**12))
    assert storage.remove_temporary(now - 10**9) == ("data/ab/pack.comet-tmp~0123456789abcdef",)
    assert not old.exists() and young.exists()
    assert [o.key for o in storage.list()] == ["data/ab/pack"]


def test_root_and_parents_are_created_on_first_put(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "not" / "yet")
    assert list(storage.list()) == []
    storage.put("a/b/c", b"x")
    assert (tmp_path / "not" / "yet" / "a" / "b" / "c").read_bytes() == b"x"


def test_key_below_an_object_is_an_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("a", b"file")
    with pytest.raises(StorageError) as info:
        storage.put("a/b", b"x")
    assert not isinstance(info.value, ObjectNotFoundError)
    with pytest.raises(ObjectNotFoundError):
        storage.get("a/b")
    storage.delete("a/b")


def test_put_file_stores_the_first_bytes_of_a_file_with_or_without_sendfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path / "vault")
    content = os.urandom(3 << 20) + b"tail not stored"
    source = tmp_path / "spool"
    source.write_bytes(content)
    fd = os.open(source, os.O_RDONLY)
    try:
        storage.put_file("data/aa/kernel", fd, 3 << 20)

        def no_sendfile(*args: object) -> int:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

        monkeypatch.setattr(os, "sendfile", no_sendfile)
        storage.put_file("data/aa/blocks", fd, 3 << 20)
        with pytest.raises(StorageError, match="came up short"):
            storage.put_file("data/aa/short", fd, len(content) + 1)
    finally:
        os.close(fd)
    assert storage.get("data/aa/kernel") == content[: 3 << 20]
    assert storage.get("data/aa/blocks") == content[: 3 << 20]
    assert sorted(os.listdir(tmp_path / "vault" / "data" / "aa")) == ["blocks", "kernel"]
