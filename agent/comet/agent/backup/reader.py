"""``SmallFileReader``: a second process that opens, stats and reads the small files a
first backup stores, so that the walk's one Python thread does not make every file's
system calls itself.

A first backup of many small files was bound by the job thread: open, fstat,
fadvise, read, listxattr and close cost ~26 us a file on this kind of machine, and
each call let a seal thread take the interpreter lock, so the walk waited again after
every one. The archiver sends this process the paths of files it is about to store
(``read_small.py`` is its program) and takes back, in order, each file's stat, content
and extended attributes; it then only hashes the content, builds the node and hands
the blob on. A file the child could not read whole is answered with None and saved
the archiver's own way, as before. Kernel socket buffers and one message at a time
(about ``MESSAGE_BYTES`` of content) bound the memory in between.
"""

from __future__ import annotations

import contextlib
import marshal
import select
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from comet.agent.backup import read_small
from comet.agent.backup.read_small import LENGTH
from comet.agent.cancel import CancelToken
from comet.agent.memory import helper_environment, peak_own_rss

if TYPE_CHECKING:
    from comet.agent.backup.read_small import Answer

_SOCKET_BUFFER = 1 << 20
# How long a wait for the child lasts before the cancel token is looked at again.
_POLL_MS = 500
# The most taken from the socket at once.
_RECEIVE = 256 << 10
_CLOSE_WAIT = 10.0


class SmallFileReader:
    """The parent's end. ``submit`` paths, then take one answer per path, in the order
    submitted, with ``take``. Never raises for the child's sake: once it is gone every
    answer still owed, and every later one, is None (the archiver reads those files
    itself). Raises CancelledError from ``take`` when the job is cancelled while it
    waits. The process starts with the first ``submit``: a backup that reads no file
    (nothing new) costs no process start."""

    def __init__(self, limit: int, cancel: CancelToken) -> None:
        self._limit = limit
        self._cancel = cancel
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._started = False
        self._poll = select.poll()
        self._buf = bytearray()
        # Received into first: one buffer for the whole backup (a fresh one per call
        # would be a large allocation, and system calls, each time).
        self._landing = memoryview(bytearray(_RECEIVE))
        self._answers: deque[Answer] = deque()
        self._owed = 0  # answers submitted but not yet received
        self.files = 0  # read by the child
        # The child's peak memory of its own (VmHWM less file pages), read when closing.
        self.peak_rss = 0

    def _start(self) -> None:
        """Start the process; if it cannot start, every answer is None."""
        self._started = True
        try:
            parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            return
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-s", "-E", read_small.__file__, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
                env=helper_environment(),
            )
        except OSError:
            parent.close()
            return
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        # Room for a few messages on their way, so that the child reads on while the
        # walk stores what it read (the default, ~200 KiB, holds less than one message).
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                parent.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        self._sock = parent
        self._poll.register(parent, select.POLLIN | select.POLLHUP | select.POLLERR)

    @property
    def pid(self) -> int | None:
        """The process's id, once it started."""
        return None if self._proc is None else self._proc.pid

    @property
    def waiting(self) -> int:
        """Answers submitted and not yet taken."""
        return self._owed + len(self._answers)

    def submit(self, paths: Sequence[str]) -> None:
        """Ask for ``paths``; the request is small (names only), so this does not wait
        for the child while it is answering."""
        if not paths:
            return
        if not self._started:
            self._start()
        self._owed += len(paths)
        if self._sock is None:
            return
        message = marshal.dumps((self._limit, list(paths)))
        try:
            self._send(LENGTH.pack(len(message)) + message)
        except OSError:
            self._stop()

    def take(self) -> Answer:
        """The next answer, waiting for it if need be."""
        while not self._answers:
            assert self._owed > 0, "take() without a submitted path"
            if self._sock is None:
                self._owed -= 1
                return None
            answers = self._receive()
            if answers is None:
                self._stop()
                continue
            self._owed -= len(answers)
            self._answers.extend(answers)
        answer = self._answers.popleft()
        if answer is not None:
            self.files += 1
        return answer

    def _send(self, data: bytes) -> None:
        # Requests are small and at most _READ_AHEAD paths are owed at a time: the
        # socket buffer always has room, so this does not wait for the child.
        assert self._sock is not None
        self._sock.sendall(data)

    def _receive(self) -> list[Answer] | None:
        """The next message's answers, or None if the child is gone or broke the
        protocol."""
        buf = self._buf
        while True:
            if len(buf) >= LENGTH.size:
                (length,) = LENGTH.unpack_from(buf)
                end = LENGTH.size + length
                if len(buf) >= end:
                    try:
                        answers = marshal.loads(memoryview(buf)[LENGTH.size : end])
                    except (EOFError, ValueError, TypeError):
                        return None
                    del buf[:end]
                    if not isinstance(answers, list) or len(answers) > self._owed:
                        return None
                    return answers
            if not self._fill():
                return None

    def _fill(self) -> bool:
        """Append what the child has sent so far to the buffer, waiting for some if
        there is none (every wait for the child, or a system call, lets a seal thread
        take the interpreter lock, so as much as is there is taken at once). False if
        the child is gone."""
        assert self._sock is not None
        sock = self._sock
        while True:
            try:
                n = sock.recv_into(self._landing, _RECEIVE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                self._cancel.check()
                with contextlib.suppress(InterruptedError):
                    self._poll.poll(_POLL_MS)
                continue
            except OSError:
                return False
            if not n:
                return False
            self._buf += self._landing[:n]
            return True

    def _stop(self) -> None:
        """The child is gone or broke the protocol: answer the rest with None."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._answers.extend([None] * self._owed)
        self._owed = 0

    def close(self) -> None:
        """End the child (answers not taken are dropped). Sets ``peak_rss``."""
        if self._proc is None:
            return
        self.peak_rss = peak_own_rss(self._proc.pid)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
            self._sock.close()
            self._sock = None
        self._answers.clear()
        self._buf.clear()
        self._owed = 0
        try:
            self._proc.wait(_CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


__all__ = ["SmallFileReader"]
