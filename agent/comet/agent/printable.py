"""``printable``: text that names files, made fit for the job store and the wire.

A Linux file name is bytes; one that is not UTF-8 (an old Latin-1 ``café``) reaches
Python with surrogate escapes (``os.fsdecode``), which SQLite and protobuf refuse. Every
path a job records (its current file, warnings, its error) and every name a listing
sends goes through here: such a name shows its raw bytes as ``\\xNN`` (like ``ls -b``),
and the job and the listing go on. Snapshots keep the exact bytes; only what is shown
changes."""

from __future__ import annotations


def printable(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
            return text.encode("utf-8", "backslashreplace").decode()
        return raw.decode("utf-8", "backslashreplace")
    return text
