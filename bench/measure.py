"""Timing and peak memory of one operation, and the benchmark's error type.
Imports nothing from Comet."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class BenchError(Exception):
    """A tool failed or produced something other than the corpus; the message says
    which tool, which step and where its log is."""


@dataclass(frozen=True)
class Measurement:
    """Wall-clock seconds of one operation and the peak resident set of the process
    that did the work."""

    seconds: float
    peak_rss_bytes: int


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
    peak RSS from ``wait4`` (``ru_maxrss``, exact, not sampled). Raises BenchError
    on a non-zero exit."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        start = time.perf_counter()
        stdout = subprocess.DEVNULL if discard_stdout else out
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=out
        )
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
    # wait4 reaped the child; tell Popen so it does not wait again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{argv[0]} {argv[1]} exited {proc.returncode}; see {log}")
    return Measurement(seconds=seconds, peak_rss_bytes=usage.ru_maxrss * 1024)


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
