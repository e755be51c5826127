"""Mount rows: each tool's FUSE mount of the latest snapshot (``comet mount``,
``restic mount``), measured after the first backup, several times (median) on a fresh
mount each time, the tools taking turns, each sample after an untimed read of the
tool's repository (so both see a warm page cache; each mount starts empty):

- time to first byte: open and read 1 byte of a file never read before (median of 5
  files spread through the corpus);
- sequential read of every file of the ``large`` corpus (1 MiB reads), seconds and MB/s;
- ``find ROOT | wc -l`` on the ``source`` corpus.

A tool without a ``mount`` method gets no mount rows. Imports nothing from Comet."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

from bench.corpus import CHUNK, Corpus
from bench.measure import BenchError
from bench.report import Results
from bench.tool import Case

READY_TIMEOUT = 300.0


@runtime_checkable
class MountingTool(Protocol):
    name: str

    def mount(self, case: Case) -> AbstractContextManager[Path]:
        """Mount the case's repository; yield the corpus root inside the latest
        snapshot once it is listable; unmount on exit."""
        ...


def wait_for_path(path: Path, what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: {path} did not appear in {timeout:.0f} s")
        time.sleep(0.05)


def _first_byte(root: Path, corpus: Corpus, samples: int = 5) -> float:
    """Median over a few files spread through the corpus (a single read of a few ms is
    mostly scheduling noise on a busy machine), each read for the first time."""
    files = [r for r in corpus.files if (corpus.root / r).stat().st_size > 0]
    picked = [files[i * len(files) // samples] for i in range(min(samples, len(files)))]
    times = []
    for rel in dict.fromkeys(picked):
        start = time.perf_counter()
        with open(root / rel, "rb", buffering=0) as f:
            if len(f.read(1)) != 1:
                raise BenchError(f"read nothing from {root / rel}")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _read_all(root: Path, corpus: Corpus) -> tuple[float, int]:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total = 0
    start = time.perf_counter()
    for rel in corpus.files:
        with open(root / rel, "rb", buffering=0) as f:
            while n := f.readinto(view):
                total += n
    return time.perf_counter() - start, total


def _find_count(root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    out = subprocess.run(
        f"find '{root}' | wc -l", shell=True, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, int(out.stdout.strip())


def _entries(root: Path) -> int:
    """What ``find root | wc -l`` prints on the original tree."""
    count = 1
    for _dirpath, dirnames, filenames in os.walk(root):
        count += len(dirnames) + len(filenames)
    return count


def _warm(root: Path) -> None:
    """Read every file under ``root`` once (untimed), so each sample starts from a warm
    page cache whichever tool ran before it."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb", buffering=0) as f:
                    while f.readinto(view):
                        pass


def _load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def measure_sample(client: MountingTool, case: Case, results: Results) -> str:
    """One sample of the mount rows on a fresh mount of the case; return a one-line
    summary for the log."""
    corpus, tool = case.corpus, client.name
    _warm(case.repo_dir)
    with client.mount(case) as root:
        first = _first_byte(root, corpus)
        results.add(corpus.name, "mount_first_byte", tool, first * 1000)
        summary = f"mount first byte {first * 1000:.1f} ms"
        if corpus.name == "large":
            seconds, total = _read_all(root, corpus)
            expected = sum((corpus.root / r).stat().st_size for r in corpus.files)
            if total != expected:
                raise BenchError(f"{tool} mount: read {total} bytes, the corpus has {expected}")
            results.add(corpus.name, "mount_read", tool, seconds)
            results.add(corpus.name, "mount_read_rate", tool, total / 1e6 / max(seconds, 1e-9))
            summary += f", read {total / 1e6:.0f} MB in {seconds:.2f} s"
        else:
            seconds, count = _find_count(root)
            expected = _entries(corpus.root)
            if count != expected:
                raise BenchError(
                    f"{tool} mount: find saw {count} entries, the corpus has {expected}"
                )
            results.add(corpus.name, "mount_find", tool, seconds)
            summary += f", find | wc -l {count} in {seconds:.2f} s"
    return f"{summary} ({_load()})"


def measure_mounts(
    cases: list[tuple[MountingTool, Case]],
    results: Results,
    samples: int,
    log: Callable[[str], None],
) -> None:
    """``samples`` samples of every tool's mount rows, the tools taking turns (ABBA:
    the order reverses every sample, so neither tool always follows the other), each
    on a fresh mount after the same untimed read of its repository."""
    for n in range(samples):
        for client, case in cases if n % 2 == 0 else cases[::-1]:
            summary = measure_sample(client, case, results)
            log(f"run {case.run} {case.corpus.name:6} {client.name:6} mount {n + 1}: {summary}")


@contextmanager
def mount_dir() -> Iterator[Path]:
    """A fresh empty mount point in /tmp (short, reachable), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="bm-", dir="/tmp"))
    try:
        yield path
    finally:
        try:
            path.rmdir()
        except OSError:
            subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True, check=False)
