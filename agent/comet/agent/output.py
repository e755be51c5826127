"""Printing for the command-line tools: JSON documents (snake_case keys, string ids,
RFC 3339 UTC times, sizes in bytes) and plain aligned tables."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1)
# The seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of Timestamp.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


def rfc3339(ts: Timestamp | datetime | None) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, Timestamp):
        seconds, nanos = ts.seconds, ts.nanos
        if seconds == 0 and nanos == 0:
            return None
        if 0 <= nanos < 1_000_000_000 and _MIN_SECONDS <= seconds <= _MAX_SECONDS:
            # ToDatetime's arithmetic without its checks and time zone conversion: a
            # listing formats one time per file.
            moment = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
            return moment.isoformat() + "Z"
        ts = ts.ToDatetime(tzinfo=UTC)  # raises ValueError, as it did before
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rfc3339_parts(seconds: int, nanos: int) -> str | None:
    """``rfc3339(Timestamp(seconds=seconds, nanos=nanos))``, for a listing's times: the
    text of each second is kept for the next time in that second (files of a folder
    are often written within one), so most times cost one lookup."""
    if not (0 <= nanos < 1_000_000_000 and _MIN_SECONDS <= seconds <= _MAX_SECONDS):
        return rfc3339(Timestamp(seconds=seconds, nanos=nanos))  # raises as rfc3339 does
    if seconds == 0 and nanos == 0:
        return None
    text = _SECONDS.get(seconds)
    if text is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        text = _SECONDS[seconds] = (_EPOCH + timedelta(seconds=seconds)).isoformat()
    micros = nanos // 1000
    return f"{text}.{micros:06d}Z" if micros else text + "Z"


_SECONDS: dict[int, str] = {}


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=False, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def human_size(n: float) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"


def fail(program: str, message: str, code: int = 1) -> int:
    print(f"{program}: error: {message}", file=sys.stderr)
    return code


def stdout_reader_gone() -> int:
    """The exit status after the reader of stdout went away (``comet … | head``):
    no message, no traceback (stdout is pointed at /dev/null so the interpreter's final
    flush stays quiet), 141 as for a tool the shell saw killed by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141
