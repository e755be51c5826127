"""The progress line ``--wait`` draws on a terminal for every long job (backup,
restore, verify, retention and prune, reindex…): done and total, rate, ETA, and the
current path or phase. Drawn on stderr, and only when stdout and stderr both are
terminals: output redirected to a file or a pipe stays free of it."""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from comet.agent.output import human_size

# The rate is measured over the last few seconds, so a slow start or a burst of
# unchanged files does not skew the ETA for long.
RATE_WINDOW_SECONDS = 10.0
# At most this many redraws a second: a busy job sends far more events.
REDRAWS_PER_SECOND = 8
CLEAR_LINE = "\r\x1b[K"


@dataclass(frozen=True)
class Progress:
    bytes_done: int = 0
    bytes_total: int = 0
    items_done: int = 0
    items_total: int = 0
    current: str = ""  # a path, or a maintenance job's phase


def duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``3:04:59``."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(p: Progress, *, rate: float, width: int) -> str:
    """One line, at most ``width`` characters. Jobs that move bytes (backup, restore)
    are measured in bytes; maintenance phases in items. ``rate`` is per second in the
    measured unit; the ETA needs a total larger than what is done."""
    by_bytes = p.bytes_done > 0 or p.bytes_total > 0
    done, total = (p.bytes_done, p.bytes_total) if by_bytes else (p.items_done, p.items_total)
    parts: list[str] = []
    if by_bytes:
        files = f"{p.items_done:,}" + (f"/{p.items_total:,}" if p.items_total else "")
        size = human_size(p.bytes_done) + (f"/{human_size(p.bytes_total)}" if total else "")
        parts += [f"{files} files", size]
    elif p.items_done or p.items_total:
        parts.append(f"{p.items_done:,}" + (f"/{p.items_total:,}" if p.items_total else ""))
    if total and done <= total:
        parts.insert(0, f"{100 * done // total}%")
    if rate > 0:
        parts.append(f"{human_size(rate)}/s" if by_bytes else f"{rate:,.1f}/s")
        if total > done:
            parts.append(f"ETA {duration((total - done) / rate)}")
    text = ", ".join(parts)
    room = width - len(text) - 2
    current = p.current
    if current and room >= 8:
        shown = current if len(current) <= room else "…" + current[-(room - 1) :]
        text = f"{text}  {shown}" if text else shown
    return text[:width]


class ProgressLine:
    """Redraws one line on ``out`` from successive progress reports."""

    def __init__(
        self, out: TextIO, *, clock: Callable[[], float] = time.monotonic, width: int = 0
    ) -> None:
        self._out = out
        self._clock = clock
        self._width = width
        self._samples: deque[tuple[float, int]] = deque()
        self._phase = ""
        self._drawn_at = -1.0
        self._shown = False

    def rate(self, p: Progress) -> float:
        now = self._clock()
        amount = p.bytes_done if (p.bytes_done or p.bytes_total) else p.items_done
        phase = "" if p.bytes_done or p.bytes_total else p.current
        if phase != self._phase or (self._samples and amount < self._samples[-1][1]):
            self._samples.clear()  # a new maintenance phase counts from zero again
            self._phase = phase
        self._samples.append((now, amount))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_SECONDS:
            self._samples.popleft()
        (t0, a0), (t1, a1) = self._samples[0], self._samples[-1]
        return (a1 - a0) / (t1 - t0) if t1 - t0 >= 0.5 else 0.0

    def update(self, p: Progress, *, force: bool = False) -> None:
        rate = self.rate(p)
        now = self._clock()
        if not force and now - self._drawn_at < 1 / REDRAWS_PER_SECOND:
            return
        self._drawn_at = now
        width = self._width or shutil.get_terminal_size((80, 24)).columns - 1
        self._out.write(CLEAR_LINE + progress_text(p, rate=rate, width=width))
        self._out.flush()
        self._shown = True

    def message(self, text: str) -> None:
        """A log line above the progress line."""
        self._out.write(CLEAR_LINE + text + "\n")
        self._shown = False
        self._drawn_at = -1.0

    def clear(self) -> None:
        if self._shown:
            self._out.write(CLEAR_LINE)
            self._out.flush()
            self._shown = False


def on_terminal() -> bool:
    """Progress is drawn only for a person watching: stdout and stderr on a terminal."""
    return sys.stdout.isatty() and sys.stderr.isatty()
