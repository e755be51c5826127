"""The program of the backup's small-file reading process (``reader.SmallFileReader``
starts it as ``python -S -s -E read_small.py FD``), and what it shares with the
archiver: how a file's extended attributes are read.

It reads requests from the socket ``FD``, each a list of paths of files the walk is
about to store, and for each path opens the file (``O_NOFOLLOW``, ``O_NONBLOCK``,
``O_NOATIME`` where allowed), takes its ``fstat``, and if it is a regular file smaller
than the request's limit reads it whole and lists its extended attributes, all through
the one descriptor. Answers come back in request order, several files to a message.
Anything else (it cannot be opened or read, it is not a regular file, it is as large as
the limit) is answered with None: the archiver then saves that file its own way, which
words the warning. It stops at the end of its input: the parent closed the socket, or
died. Imports only modules built into the interpreter or small C ones (``_socket``,
``_struct``, ``marshal``), no ``typing``, ``socket``, ``signal`` or ``contextlib``: the
child's own memory is mostly the interpreter's, and those pulled in ~1.5 MiB more.
"""

from __future__ import annotations

import _socket
import _struct
import errno
import marshal
import os
import stat
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    Answer = tuple[Any, Any, bytes, bool, bool, Any, Any] | None

# --- extended attributes: shared with the archiver ---------------------------------

_IGNORED_XATTR_ERRNOS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM}


def read_xattrs(path: str | int) -> tuple[tuple[tuple[str, bytes], ...], str | None]:
    """Return ``(xattrs, problem)``; filesystems without xattr support give ``((), None)``.
    ``path`` is not followed if it is a symlink; it may be an open file's descriptor
    (no path lookup)."""
    follow = isinstance(path, int)  # a descriptor is the object itself: nothing to follow
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as e:
        if e.errno in _IGNORED_XATTR_ERRNOS:
            return (), None
        return (), f"cannot list extended attributes: {e.strerror}"
    if not names:
        return (), None
    out = []
    problem = None
    for name in sorted(names):
        try:
            out.append((name, os.getxattr(path, name, follow_symlinks=follow)))
        except OSError as e:
            if e.errno not in _IGNORED_XATTR_ERRNOS:
                problem = f"cannot read extended attribute {name}: {e.strerror}"
    return tuple(out), problem


# --- the wire --------------------------------------------------------------------

# Both ways: a length-prefixed marshalled message. Parent to child: (limit, paths).
# Child to parent: a list of answers, in the order the paths were sent; the answers
# to one request may be split over several messages. marshal only ever reads what the
# other half of this program wrote.
LENGTH = _struct.Struct("!I")
# A message is sent once the file content in it reaches this (or the request is done):
# the child holds at most this plus one file below a chunk, twice (answers, marshalled).
MESSAGE_BYTES = 128 << 10

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
NOATIME = getattr(os, "O_NOATIME", 0)
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)

# An answer: (the ``fstat``'s ``os.stat_result`` arguments: its sequence and its dict, content,
# whether one read returned exactly the size fstat gave, whether the file changed while
# being read (size or mtime; only looked at when it took more than one read), xattrs,
# problem reading them), or None: the archiver saves the file its own way. Plain tuples:
# marshal takes no others.


def open_file(path: str) -> int:
    try:
        return os.open(path, OPEN_FLAGS | NOATIME)
    except PermissionError:
        return os.open(path, OPEN_FLAGS)  # O_NOATIME needs ownership


def read_whole(fd: int, expected: int, limit: int) -> tuple[bytes, bool]:
    """A file's content read with plain reads: ``expected`` (its fstat size) plus one
    byte is asked for first, so a file that grew is noticed, and reading stops at
    ``limit`` bytes. Returns the data and whether one read gave exactly ``expected``."""
    data = os.read(fd, min(limit, expected + 1))
    one_read = len(data) == expected
    # A short read ends at the size fstat gave: no extra read is spent looking for
    # the end (a file that changes later shows in the next backup's stat check).
    while len(data) < expected or (len(data) > expected and len(data) < limit):
        more = os.read(fd, limit - len(data))
        if not more:
            break
        data += more
        one_read = False
    return data, one_read


def _answer(fd: int, limit: int) -> Answer:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size >= limit:
        return None
    data, one_read = read_whole(fd, st.st_size, limit)
    if len(data) >= limit:
        return None
    changed = False
    if not one_read:
        after = os.fstat(fd)
        changed = after.st_size != len(data) or after.st_mtime_ns != st.st_mtime_ns
    xattrs, problem = read_xattrs(fd)
    reduced: Any = st.__reduce__()
    seq, fields = reduced[1]
    return seq, fields, data, one_read, changed, xattrs, problem


def _read_request(paths: Sequence[str], limit: int, sock: _socket.socket) -> None:
    # Every file of the request is opened first and the kernel asked to start reading
    # it, so files not in the page cache are read side by side.
    fds: list[int | None] = []
    for path in paths:
        try:
            opened = open_file(path)
        except OSError:
            fds.append(None)
            continue
        if _WILLNEED is not None:
            try:  # noqa: SIM105 (contextlib is not imported here, see above)
                os.posix_fadvise(opened, 0, limit, _WILLNEED)
            except OSError:
                pass
        fds.append(opened)
    answers: list[Answer] = []
    size = 0
    try:
        for i, fd in enumerate(fds):
            answer: Answer = None
            if fd is not None:
                try:
                    answer = _answer(fd, limit)
                except OSError:
                    answer = None
                finally:
                    os.close(fd)
                    fds[i] = None
            answers.append(answer)
            if answer is not None:
                size += len(answer[2])
            if size >= MESSAGE_BYTES:
                _send(sock, answers)
                answers, size = [], 0
        if answers:
            _send(sock, answers)
    finally:
        for left in fds:
            if left is not None:
                os.close(left)


def _send(sock: _socket.socket, answers: list[Answer]) -> None:
    message = marshal.dumps(answers)
    sock.sendall(LENGTH.pack(len(message)))  # not joined: that would be a third copy
    sock.sendall(message)


def receive_exactly(sock: _socket.socket, size: int) -> bytearray | None:
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
    while True:
        header = receive_exactly(sock, LENGTH.size)
        if header is None:
            return
        payload = receive_exactly(sock, LENGTH.unpack(header)[0])
        if payload is None:
            raise EOFError("input ended inside a request")
        limit, paths = marshal.loads(payload)
        _read_request(paths, limit, sock)


def main(argv: Sequence[str]) -> int:
    # Started in a session of its own: a terminal's Ctrl-C reaches the agent only, which
    # then closes the socket.
    sock = _socket.socket(fileno=int(argv[1]))
    try:
        _serve(sock)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return 1  # the parent is gone or broke off: nothing left to answer
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
