"""``FileWriter``: a second process that creates small restored files, so that a
directory restore of many small files uses two cores instead of one.

A restore of small files was bound by the one Python thread that both took blobs from
the readers and made every file: create, write, owner, mode, times, close and rename,
about 180 us a file, on one core of two. ``DirectoryTarget`` hands files whose whole
content came in one write to this process instead (``make_file.py`` is its program):
batches of complete file descriptions go over a Unix socket with the descriptors of the
directories they go in, and one acknowledgement per batch comes back naming the files
that failed. The parent keeps only the names of files not yet acknowledged.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

from comet.agent.errors import RestoreError
from comet.agent.memory import helper_environment, peak_own_rss
from comet.agent.restore import make_file
from comet.agent.restore.make_file import ACK_LENGTH, HEADER, MAX_BATCH_DIRS

if TYPE_CHECKING:
    from comet.agent.restore.make_file import FileSpec

# A batch is sent once it holds this many files or bytes of content.
_BATCH_FILES = 256
_BATCH_BYTES = 128 << 10
_SOCKET_BUFFER = 1 << 20
# How long closing waits for the child to finish what it was sent before killing it.
_CLOSE_WAIT = 30.0
_READ = select.POLLIN | select.POLLHUP | select.POLLERR


class WriterStoppedError(RestoreError):
    """The file-writing process ended before confirming every file it was given."""

    code = "restore.writer_stopped"


class FileWriter:
    """The parent's end: ``add`` files, each with a key the caller knows it by, and
    collect the keys of those that failed with ``failures``. Raises WriterStoppedError
    when the child is gone."""

    def __init__(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-s", "-E", make_file.__file__, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
                env=helper_environment(),
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        # Room for several batches on their way, so that neither side waits for the
        # other's every batch (the default, ~200 KiB, held one batch: each side then
        # spent about a fifth of a restore waiting). Kernel memory, bounded by this.
        with contextlib.suppress(OSError):
            parent.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        parent.setblocking(False)
        self._sock = parent
        self._poll = select.poll()
        self._poll.register(parent, _READ)
        self._specs: list[FileSpec] = []
        self._keys: list[object] = []
        self._dir_fds: list[int] = []
        self._dir_index: dict[object, int] = {}
        self._bytes = 0
        self._sent = 0
        self._inflight: dict[int, list[object]] = {}  # batch number -> its files' keys
        self._acks = bytearray()
        self._failed: list[tuple[object, OSError | str]] = []
        self.files = 0  # handed over
        # The child's peak memory of its own (see memory.peak_own_rss), read when closing.
        self.peak_rss = 0

    @property
    def pid(self) -> int:
        return self._proc.pid

    def add(
        self,
        key: object,
        directory: object,
        dir_fd: int,
        *,
        temp: str,
        final: str,
        create_mode: int,
        size: int,
        data: bytes,
        owner: tuple[int, int] | None,
        xattrs: tuple[tuple[str, bytes], ...],
        mode: int | None,
        mtime_ns: int,
    ) -> None:
        """Queue one file (see ``make_file.FileSpec``). ``directory`` names the directory
        whose descriptor is ``dir_fd``, duplicated here: the caller may close its own."""
        index = self._dir_index.get(directory)
        if index is None:
            if len(self._dir_fds) >= MAX_BATCH_DIRS:
                self.flush()
            index = len(self._dir_fds)
            self._dir_fds.append(os.dup(dir_fd))
            self._dir_index[directory] = index
        spec = (index, temp, final, create_mode, size, data, owner, xattrs, mode, mtime_ns)
        self._specs.append(spec)
        self._keys.append(key)
        self.files += 1
        self._bytes += len(data)
        if len(self._specs) >= _BATCH_FILES or self._bytes >= _BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Send the files queued so far."""
        if not self._specs:
            return
        payload = marshal.dumps(self._specs)
        fds = self._dir_fds
        self._inflight[self._sent] = self._keys
        self._sent += 1
        self._specs, self._keys, self._dir_fds, self._dir_index, self._bytes = [], [], [], {}, 0
        try:
            self._send(HEADER.pack(len(payload), len(fds)), fds, payload)
        except OSError as e:
            raise self._stopped() from e
        finally:
            for fd in fds:
                os.close(fd)

    def _send(self, header: bytes, fds: list[int], payload: bytes) -> None:
        """Send a batch, in one system call when the socket has room, reading
        acknowledgements whenever it is full: the child may itself be waiting to send
        one, and neither would ever go on."""
        while True:
            try:
                sent = socket.send_fds(self._sock, [header, payload], fds)
                break
            except BlockingIOError:
                self._wait(writable=True)
        for part in (header, payload):
            if sent >= len(part):
                sent -= len(part)
                continue
            view = memoryview(part)[sent:]
            sent = 0
            while view:
                try:
                    view = view[self._sock.send(view) :]
                except BlockingIOError:
                    self._wait(writable=True)

    def failures(self, *, wait: bool) -> list[tuple[object, OSError | str]]:
        """The keys of failed files with their error (an OSError, or the sentence of a
        refusal) reported since the last call; ``wait``: first send what is queued and
        wait until every file is made or reported."""
        try:
            if wait:
                self.flush()
                while self._inflight:
                    self._wait(writable=False)
            else:
                self._read_acks()
        except OSError as e:
            raise self._stopped() from e
        failed, self._failed = self._failed, []
        return failed

    def _wait(self, *, writable: bool) -> None:
        """Wait until acknowledgements arrive (and read them) or, with ``writable``, the
        socket takes more."""
        self._poll.modify(self._sock, _READ | (select.POLLOUT if writable else 0))
        for _, events in self._poll.poll():
            if events & _READ:
                self._read_acks()

    def _read_acks(self) -> None:
        """Take every acknowledgement that arrived; WriterStoppedError at the end of
        the child's output."""
        while True:
            try:
                chunk = self._sock.recv(1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                raise self._stopped()
            self._acks += chunk
            self._take_acks()

    def _take_acks(self) -> None:
        acks = self._acks
        while len(acks) >= ACK_LENGTH.size:
            (length,) = ACK_LENGTH.unpack_from(acks)
            end = ACK_LENGTH.size + length
            if len(acks) < end:
                break
            batch_no, failures = marshal.loads(bytes(acks[ACK_LENGTH.size : end]))
            del acks[:end]
            keys = self._inflight.pop(batch_no)
            for index, code, reason, refused in failures:
                error: OSError | str = reason if refused else OSError(code, reason)
                self._failed.append((keys[index], error))

    def _stopped(self) -> WriterStoppedError:
        code = self._proc.poll()
        if code is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(1.0)
        status = "stopped answering" if code is None else f"ended with status {code}"
        unconfirmed = sum(len(keys) for keys in self._inflight.values())
        return WriterStoppedError(
            f"the restore's file-writing process {status}; {unconfirmed} files it was "
            "given are not confirmed as restored; run the restore again"
        )

    def close(self) -> None:
        """Let the child finish what it was sent, then end it. Files queued but not
        sent are dropped (closing after an error). Sets ``peak_rss``."""
        self.peak_rss = peak_own_rss(self._proc.pid)
        for fd in self._dir_fds:
            os.close(fd)
        self._specs, self._keys, self._dir_fds, self._dir_index = [], [], [], {}
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        try:
            self._sock.settimeout(_CLOSE_WAIT)
            while self._sock.recv(1 << 16):
                pass  # acknowledgements nobody asks for any more
        except OSError:
            pass
        finally:
            self._sock.close()
        try:
            self._proc.wait(_CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
