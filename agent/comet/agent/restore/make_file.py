"""The program of the restore's file-writing process (``writer.FileWriter`` starts it
as ``python -S -s -E make_file.py FD``), and what it shares with ``DirectoryTarget``: how
one complete file is made and where its holes go.

It reads batches of complete file descriptions from the socket ``FD``, each batch with
the descriptors of the directories its files go in (``SCM_RIGHTS``), creates every file
relative to its directory's descriptor (never by path, so the directories are the ones
``DirectoryTarget`` opened and checked) and answers each batch with the files that
failed. It stops at the end of its input: the parent closed the socket, or died.

Imports only modules built into the interpreter or small C ones (``_socket``, ``_struct``,
``marshal``, ``array``), no ``typing``, ``socket`` or ``contextlib``: the
child's own memory is mostly the interpreter's, and those pulled in ~2 MiB more.
"""

from __future__ import annotations

import _socket
import _struct
import array
import marshal
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

# --- holes: shared with DirectoryTarget --------------------------------------------

HOLE_MIN = 4096
_ZERO_BLOCK = bytes(HOLE_MIN)
_ZERO_RUN = bytes(64 * HOLE_MIN)
# ``first_zero_run``: data that can hold a hole is sampled every _SAMPLE_STRIDE bytes.
_SAMPLE_STRIDE = HOLE_MIN - 8


def first_zero_run(data: bytes) -> int:
    """Where the first run of ``HOLE_MIN`` zero bytes starts in ``data``, or -1.

    The data is first looked at one aligned 8-byte word in every ``_SAMPLE_STRIDE``:
    any run of ``HOLE_MIN`` zero bytes holds one of those words whole (the stride is a
    word less than the run), so if none of them is zero there is no run and the ``find``
    over every byte is skipped. ``find`` first prepares its 4 KiB needle, ~15 us a call,
    which was 5 % of the writing thread's time in a restore of many small files; the
    sample costs well under a microsecond. Data with a zero word is searched as before."""
    if len(data) < HOLE_MIN:
        return -1  # too short to hold a run
    words = memoryview(data)[: len(data) & ~7].cast("Q")
    if 0 not in words[:: _SAMPLE_STRIDE // 8]:
        return -1
    return data.find(_ZERO_BLOCK)


def nonzero_ranges(data: bytes, first_zero: int) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` ranges of ``data`` outside runs of at least ``HOLE_MIN``
    zero bytes; ``first_zero`` is where the first such run starts."""
    pos, zero, size = 0, first_zero, len(data)
    while True:
        if zero > pos:
            yield pos, zero
        end = zero + HOLE_MIN
        while end + len(_ZERO_RUN) <= size and data[end : end + len(_ZERO_RUN)] == _ZERO_RUN:
            end += len(_ZERO_RUN)
        while end + HOLE_MIN <= size and data[end : end + HOLE_MIN] == _ZERO_BLOCK:
            end += HOLE_MIN
        pos = end
        zero = data.find(_ZERO_BLOCK, pos)
        if zero < 0:
            if pos < size:
                yield pos, size
            return


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


# --- the wire --------------------------------------------------------------------

# Parent to child: a header (payload bytes, descriptors) sent with the batch's directory
# descriptors, then the marshalled batch. Child to parent: length-prefixed marshalled
# acknowledgements. marshal only ever reads what the other half of this program wrote.
HEADER = _struct.Struct("!II")
ACK_LENGTH = _struct.Struct("!I")
# Descriptors one SCM_RIGHTS message may carry (the kernel's SCM_MAX_FD).
MAX_BATCH_DIRS = 250

NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# A file, as the parent sends it: (index of its directory's descriptor in the batch,
# temporary name (created O_EXCL), final name, creating mode, size, content from offset 0
# (shorter than the size: the rest is a hole), (uid, gid) to fchown to or None, extended
# attributes to set, mode to fchmod to or None (created with it), mtime in ns). Plain
# tuples: marshal takes no others.
# A failure, as the child answers: (index in its batch, errno, strerror, refused: a
# metadata refusal, strerror its sentence). It names no file: the warning does (a
# temporary name would mean nothing to anybody).
if TYPE_CHECKING:
    FileSpec = tuple[int, str, str, int, int, bytes, Any, Any, Any, int]
    Failure = tuple[int, int, str, bool]


# --- the child -------------------------------------------------------------------


class _Refused(Exception):
    pass


def make_file(dir_fd: int, spec: FileSpec) -> None:
    """Create one complete file at its temporary name, give it its metadata through its
    descriptor (owner first: chown clears setuid/setgid) and rename it into place. The
    same calls ``DirectoryTarget`` makes for a file it writes itself."""
    _, temp, final, create_mode, size, data, owner, xattrs, mode, mtime_ns = spec
    fd = os.open(temp, NEW_FILE_FLAGS, create_mode, dir_fd=dir_fd)
    try:
        try:
            first = first_zero_run(data)
            if first < 0 and len(data) == size:
                if data:
                    pwrite_all(fd, memoryview(data), 0)
            else:
                os.ftruncate(fd, size)  # holes where the data has zero runs
                view = memoryview(data)
                if first < 0:
                    pwrite_all(fd, view, 0)
                else:
                    for start, end in nonzero_ranges(data, first):
                        pwrite_all(fd, view[start:end], start)
            if owner is not None:
                os.fchown(fd, *owner)
            for name, value in xattrs:
                try:
                    os.setxattr(fd, name, value)
                except OSError as e:
                    raise _Refused(f"cannot set extended attribute {name}: {e}") from e
            if mode is not None:
                os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
        os.replace(temp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:  # noqa: SIM105 (contextlib is not imported here, see above)
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _receive_fds(sock: _socket.socket, size: int) -> tuple[bytes, list[int]]:
    """Up to ``size`` bytes and the descriptors that came with them."""
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(size, _socket.CMSG_SPACE(MAX_BATCH_DIRS * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def _receive_exactly(sock: _socket.socket, size: int) -> bytearray | None:
    """``size`` bytes, or None at a clean end of input."""
    buf = bytearray(size)
    with memoryview(buf) as view:
        got = 0
        while got < size:
            n = sock.recv_into(view[got:])
            if n == 0:
                if got:
                    raise EOFError("input ended inside a message")
                return None
            got += n
    return buf


def _serve(sock: _socket.socket) -> None:
    batch_no = 0
    while True:
        header, fds = _receive_fds(sock, HEADER.size)
        if not header:
            return
        try:
            if len(header) < HEADER.size:
                rest = _receive_exactly(sock, HEADER.size - len(header))
                if rest is None:
                    raise EOFError("input ended inside a header")
                header += bytes(rest)
            length, count = HEADER.unpack(header)
            if count != len(fds):
                raise EOFError(f"expected {count} directory descriptors, got {len(fds)}")
            payload = _receive_exactly(sock, length)
            if payload is None:
                raise EOFError("input ended inside a batch")
            failures: list[Failure] = []
            specs = marshal.loads(payload)
            del payload  # the specs hold their own copies of the data
            for i, spec in enumerate(specs):
                try:
                    make_file(fds[spec[0]], spec)
                except _Refused as e:
                    failures.append((i, 0, str(e), True))
                except OSError as e:
                    failures.append((i, e.errno or 0, e.strerror or str(e), False))
        finally:
            for fd in fds:
                os.close(fd)
        specs = []
        ack = marshal.dumps((batch_no, failures))
        sock.sendall(ACK_LENGTH.pack(len(ack)) + ack)
        batch_no += 1


def main(argv: Sequence[str]) -> int:
    # Started in a session of its own, so a terminal's Ctrl-C reaches the agent only
    # (which then closes the socket); Python ignores SIGXFSZ, so a file size limit fails
    # one file (EFBIG) rather than the process.
    sock = _socket.socket(fileno=int(argv[1]))
    try:
        _serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        return 1  # the parent is gone
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
