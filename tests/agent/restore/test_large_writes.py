"""The directory target's large writes: the search for zero runs (the places it leaves
as holes), whose sampled shortcut must find exactly what a search of every byte finds,
and the writing thread, whose writes must all be in before a file's metadata, its
descriptor's closing and its rename, with a failure reaching the file it belongs to."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comet.agent.repository.tree import Node, NodeType
from comet.agent.restore import directory
from comet.agent.restore.directory import _BACKGROUND_MIN, DirectoryTarget
from comet.agent.restore.make_file import _ZERO_BLOCK
from comet.agent.restore.make_file import HOLE_MIN as _HOLE_MIN
from comet.agent.restore.make_file import first_zero_run as _first_zero_run

_SIZE = 4 * _HOLE_MIN + 5  # sampled, and not a whole number of words


def _no_zero_bytes(size: int, seed: int) -> bytearray:
    data = bytearray(os.urandom(size))
    return bytearray(b if b else (seed % 255) + 1 for b in data)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, _SIZE - _HOLE_MIN),
    extra=st.integers(-1, 2 * _HOLE_MIN),
    seed=st.integers(0, 1 << 16),
)
def test_sampled_search_finds_every_run_a_full_search_finds(
    start: int, extra: int, seed: int
) -> None:
    """A zero run of _HOLE_MIN - 1 to 3 * _HOLE_MIN bytes anywhere, at any alignment
    (one byte short of a hole included): same answer as ``find``."""
    data = _no_zero_bytes(_SIZE, seed)
    end = min(_SIZE, start + _HOLE_MIN + extra)
    data[start:end] = bytes(end - start)
    blob = bytes(data)
    assert _first_zero_run(blob) == blob.find(_ZERO_BLOCK)


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 4 * _HOLE_MIN),
    start=st.integers(0, 4 * _HOLE_MIN),
    length=st.integers(0, 2 * _HOLE_MIN),
    seed=st.integers(0, 1 << 16),
)
def test_small_data_is_judged_like_a_full_search(
    size: int, start: int, length: int, seed: int
) -> None:
    """Small files (most of a restore): any size around one or a few holes, a zero run
    that may be too short, cut off by the end, or absent; same answer as ``find``."""
    data = _no_zero_bytes(size, seed)
    start = min(start, size)
    end = min(size, start + length)
    data[start:end] = bytes(end - start)
    blob = bytes(data)
    assert _first_zero_run(blob) == blob.find(_ZERO_BLOCK)


def test_runs_at_the_edges_and_data_without_any() -> None:
    plain = bytes(_no_zero_bytes(_SIZE, 7))
    assert _first_zero_run(plain) == -1
    for start in (0, _SIZE - _HOLE_MIN, _SIZE - _HOLE_MIN - 3):
        blob = plain[:start] + bytes(_HOLE_MIN) + plain[start + _HOLE_MIN :]
        assert _first_zero_run(blob) == start == blob.find(_ZERO_BLOCK)
    assert _first_zero_run(bytes(_SIZE)) == 0


def test_a_restored_large_file_keeps_its_bytes_and_its_holes(tmp_path: Path) -> None:
    """Through the target: a large write with one unaligned zero run comes out byte for
    byte, with the run's whole blocks left as a hole."""
    data = bytearray(_no_zero_bytes(1 << 20, 3))
    data[300_001 : 300_001 + 64 * _HOLE_MIN] = bytes(64 * _HOLE_MIN)
    target = DirectoryTarget(tmp_path)
    node = Node("f", NodeType.FILE, mode=0o644, mtime_ns=10**18, size=len(data))
    handle = target.begin_file(("f",), node, len(data))
    assert handle is not None
    target.write(handle, 0, bytes(data))
    target.end_file(handle)
    target.close()
    out = tmp_path / "f"
    assert out.read_bytes() == data
    assert out.stat().st_blocks * 512 <= len(data) - 60 * _HOLE_MIN


def _file(name: str, size: int, mtime_ns: int = 1_600_000_000_123_456_789) -> Node:
    return Node(name, NodeType.FILE, mode=0o640, mtime_ns=mtime_ns, size=size)


@pytest.mark.parametrize("slow", [False, True])
def test_written_in_pieces_by_the_writing_thread_with_metadata_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: bool
) -> None:
    """Three files written piece by piece, interleaved, with only two descriptors open
    at a time (each closing waits for its writes): every byte lands, and the mtime is
    the node's (no write reaches a file after its metadata). ``slow``: the writing
    thread lags (injected), so a write not waited for would land after the mtime."""
    if slow:
        real = directory.pwrite_all

        def lagging(fd: int, view: memoryview, offset: int) -> None:
            time.sleep(0.02)
            real(fd, view, offset)

        monkeypatch.setattr(directory, "pwrite_all", lagging)
    piece = 4 * _BACKGROUND_MIN
    contents = {n: os.urandom(3 * piece) for n in ("a", "b", "c")}
    target = DirectoryTarget(tmp_path)
    handles = {n: target.begin_file((n,), _file(n, 3 * piece), 3 * piece) for n in contents}
    old_max = directory._MAX_OPEN
    directory._MAX_OPEN = 2
    try:
        for i in (2, 0, 1):
            for name, data in contents.items():
                handle = handles[name]
                assert handle is not None
                target.write(handle, i * piece, data[i * piece : (i + 1) * piece])
        for handle in handles.values():
            assert handle is not None
            target.end_file(handle)
    finally:
        directory._MAX_OPEN = old_max
        target.close()
    for name, data in contents.items():
        out = tmp_path / name
        assert out.read_bytes() == data
        assert out.stat().st_mtime_ns == 1_600_000_000_123_456_789
        assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temp left


@pytest.mark.parametrize("evicted", [False, True])
def test_a_failed_background_write_fails_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evicted: bool
) -> None:
    """A large write that fails on the writing thread (a full disk, injected) is raised
    by that file's end, not lost and not blamed on another file; the file is not put in
    place. ``evicted``: its descriptor was closed (to open others) before the error was
    collected."""
    real = os.pwrite

    def failing(fd: int, data: memoryview, offset: int) -> int:
        if os.fstat(fd).st_size == 7 * _BACKGROUND_MIN:  # only the doomed file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(directory.os, "pwrite", failing)
    monkeypatch.setattr(directory, "_MAX_OPEN", 1 if evicted else 256)
    target = DirectoryTarget(tmp_path)
    bad = target.begin_file(("bad",), _file("bad", 7 * _BACKGROUND_MIN), 7 * _BACKGROUND_MIN)
    good_data = os.urandom(2 * _BACKGROUND_MIN)
    good = target.begin_file(("good",), _file("good", len(good_data)), len(good_data))
    assert bad is not None and good is not None
    target.write(bad, 0, os.urandom(_BACKGROUND_MIN))  # created at full size: ftruncate
    target.write(good, 0, good_data)
    target.end_file(good)
    with pytest.raises(OSError) as failure:
        target.end_file(bad)
    assert failure.value.errno == errno.ENOSPC
    target.abort_file(bad)
    target.close()
    assert (tmp_path / "good").read_bytes() == good_data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]


def test_a_large_file_keeps_a_bounded_amount_in_flight(tmp_path: Path) -> None:
    """Writes handed over to the writing thread are forgotten once done: a file written
    in many pieces holds no more than the write-behind budget, not a record per piece."""
    piece = _BACKGROUND_MIN
    count = 4 * directory._WRITE_BEHIND // piece
    target = DirectoryTarget(tmp_path)
    handle = target.begin_file(("big",), _file("big", count * piece), count * piece)
    assert handle is not None
    block = os.urandom(piece)
    for i in range(count):
        target.write(handle, i * piece, block)
        background = target._background
        assert background._bytes <= directory._WRITE_BEHIND
        assert len(background._queued) <= directory._WRITE_BEHIND // piece
    target.end_file(handle)
    target.close()
    assert (tmp_path / "big").read_bytes() == block * count
