"""Child programs a job runs (program sources, restore commands, pre/post commands) and
the reads a job makes, made to stop within seconds when the job is cancelled.

A program runs in its own process group (session), so stopping it reaches everything
its shell started: SIGTERM to the group, then SIGKILL after a short grace for programs
that ignore or trap SIGTERM. Reads check the cancel token before every call, and a call
never asks for more than about a second's worth of data. Must not import grpc, asyncio or
Qt.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from comet.agent.cancel import CancelToken

TERM_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
POLL = 0.2  # seconds a blocked pipe read waits before looking at the token again
READ_MAX = 1 << 20  # at most 1 MiB per read call
READ_MIN = 16 << 10
SLOW_READ = 0.5  # a read slower than this halves the next read's size

ReadInto = Callable[[memoryview], int]


def stop_process_group(proc: subprocess.Popen[bytes], *, grace: float = TERM_GRACE) -> None:
    """SIGTERM the program's process group, SIGKILL it after ``grace`` seconds, and
    reap the program. Never raises; the program must have been started with
    ``start_new_session=True``."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    # Children the shell left behind may still hold the group (and our pipes) open.
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_on_cancel(
    proc: subprocess.Popen[bytes], cancel: CancelToken, *, grace: float = TERM_GRACE
) -> Callable[[], None]:
    """Stop ``proc``'s group (on a helper thread) as soon as ``cancel`` fires; returns
    the function that disarms this once the program is done."""

    def stop() -> None:
        threading.Thread(
            target=stop_process_group, args=(proc,), kwargs={"grace": grace}, daemon=True
        ).start()

    return cancel.on_cancel(stop)


def pipe_reader(fd: int, cancel: CancelToken, *, poll: float = POLL) -> ReadInto:
    """A ``read_into`` for a pipe that returns (raising CancelledError) within ``poll``
    seconds of a cancel, even while the writer sends nothing."""

    def read_into(buf: memoryview) -> int:
        while True:
            cancel.check()
            ready, _, _ = select.select([fd], [], [], poll)
            if ready:
                return os.readv(fd, [buf[:READ_MAX]])

    return read_into


def bounded_reader(read_into: ReadInto, cancel: CancelToken) -> ReadInto:
    """Wraps a file's ``read_into``: checks the token before each call and asks for at
    most 1 MiB, less while reads are slow, so a slow disk or network file system still
    sees a cancel within about a second."""
    size = READ_MAX

    def bounded(buf: memoryview) -> int:
        nonlocal size
        cancel.check()
        started = time.monotonic()
        n = read_into(buf[:size])
        took = time.monotonic() - started
        if took > SLOW_READ:
            size = max(READ_MIN, size // 2)
        elif took < SLOW_READ / 10:
            size = min(READ_MAX, size * 2)
        return n

    return bounded


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str


def run_command(
    argv: Sequence[str],
    cancel: CancelToken,
    *,
    timeout: float,
    grace: float = TERM_GRACE,
) -> CommandResult:
    """Run a command to its end in its own process group, with stdout and stderr
    combined. A cancel stops the group and raises CancelledError; ``timeout`` stops it
    and gives return code -9 (or the signal it died of)."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    disarm = stop_on_cancel(proc, cancel, grace=grace)
    try:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process_group(proc, grace=grace)
            out, _ = proc.communicate()
    finally:
        disarm()
    cancel.check()
    return CommandResult(proc.returncode, out.decode(errors="replace"))
