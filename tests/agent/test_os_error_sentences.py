"""The one mapping of OS errors to sentences: each names the path and what to do, and
none shows Python's wording ("[Errno 28] …")."""

from __future__ import annotations

import errno

import pytest

from comet.agent.errors import LocalPathError, os_error_sentence


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOENT, "does not exist; check the path"),
        (errno.ENOTDIR, "is a file, not a folder"),
        (errno.EISDIR, "is a folder, but a file is needed"),
        (errno.EEXIST, "already exists"),
        (errno.EACCES, "permission denied; run as a user allowed"),
        (errno.EPERM, "not permitted"),
        (errno.ENOSPC, "no space left on the disk; free some space"),
        (errno.EDQUOT, "quota"),
        (errno.EROFS, "read-only; choose a destination on a writable disk"),
        (errno.ENAMETOOLONG, "too long"),
        (errno.ELOOP, "symbolic links"),
        (errno.EMFILE, "ulimit -n"),
        (errno.EIO, "disk"),
    ],
)
def test_each_cause_names_the_path_and_what_to_do(code: int, words: str) -> None:
    error = OSError(code, "Python's words", "/srv/backup/x")
    text = os_error_sentence(error)
    assert text.startswith("/srv/backup/x: ") and words in text
    assert "Errno" not in text and "Python's words" not in text
    failure = LocalPathError.from_os_error(error)
    assert failure.code == f"path.{errno.errorcode[code]}" and str(failure) == text


def test_a_port_in_use_and_an_unknown_cause() -> None:
    busy = os_error_sentence(OSError(errno.EADDRINUSE, "x"), path="port 8060")
    assert busy.startswith("port 8060 is in use")
    other = os_error_sentence(OSError(errno.ECHILD, "No child processes", "/x"))
    assert other == "/x: no child processes"
