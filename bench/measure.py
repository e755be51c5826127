"""Timing and peak memory of one operation, and the benchmark's error type.
Imports nothing from Comet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


class BenchError(Exception):
    """A tool failed or produced something other than the corpus; the message says
    which tool, which step and where its log is."""


@dataclass(frozen=True)
class Measurement:
    """Wall-clock seconds of one operation and the peak resident set of the process
    that did the work (with its helper process's, where it had one)."""

    seconds: float
    peak_rss_bytes: int


# Runs the command as its own child and writes the child's ru_maxrss (KiB) to the
# descriptor named by its first argument. Linux
# keeps a process's peak RSS across execve, and a child forked from the bench starts
# with the bench's own resident set as its peak (~140 MB once a 1,000,000-file corpus
# is listed), so wait4 on a command forked straight from the bench reported that floor
# for anything smaller (restic's 100k rows and the comet CLI all read 136.0 MB). Forked
# from this small interpreter instead, the command's peak is its own.
_LAUNCHER = """
import os, sys
report = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    try:
        os.close(report)
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str],
    log: Path,
    cwd: Path | None = None,
    discard_stdout: bool = False,
) -> Measurement:
    """Run ``argv`` to completion with output appended to ``log`` (stdout to /dev/null
    with ``discard_stdout``: listings of a million lines); time it and take its
    peak RSS from ``wait4`` (``ru_maxrss``, exact, not sampled) in a small launcher
    process (see ``_LAUNCHER``). Raises BenchError on a non-zero exit."""
    read_fd, write_fd = os.pipe()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        start = time.perf_counter()
        stdout = subprocess.DEVNULL if discard_stdout else out
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(write_fd), *argv],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=out,
                pass_fds=(write_fd,),
                start_new_session=True,  # the launcher and the command are killed together
            )
        finally:
            os.close(write_fd)
        try:
            proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            os.close(read_fd)
            raise
        seconds = time.perf_counter() - start
    with os.fdopen(read_fd, "rb") as pipe:
        reported = pipe.read()
    if proc.returncode != 0:
        raise BenchError(f"{argv[0]} {argv[1]} exited {proc.returncode}; see {log}")
    return Measurement(seconds=seconds, peak_rss_bytes=int(reported) * 1024)


def run_quiet(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    log: Path,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> str:
    """Run an untimed helper command; return its stdout, log its stderr."""
    result = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"see {log}"]
        raise BenchError(f"{' '.join(argv[:3])} exited {result.returncode}: {detail[0]}")
    return result.stdout


def peak_rss_of(pid: int) -> int:
    """``VmHWM`` of a running process: its peak resident set since it started."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmHWM for process {pid}")
