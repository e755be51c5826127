"""The one-line progress a waiting ``comet`` command draws on a terminal: what is done,
the rate over the last seconds, and when a total is known the share done and an ETA.
Pure formatting: the caller decides whether stderr is a terminal."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from comet.agent.output import human_size
from comet.v1 import common_pb2

WINDOW_SECONDS = 10.0  # the rate is measured over this much recent time


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``."""
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass
class ProgressLine:
    """Feed it each progress report with the time it arrived (monotonic seconds);
    ``render`` gives the line to draw."""

    samples: deque[tuple[float, int, int]] = field(default_factory=deque)
    phase: str = ""

    def render(self, p: common_pb2.JobProgress, now: float, *, width: int = 0) -> str:
        """The line, cut to ``width`` columns (0: uncut) so it never wraps."""
        line = self._line(p, now)
        return line[: width - 1] if width > 1 else line

    def _line(self, p: common_pb2.JobProgress, now: float) -> str:
        if p.items_total and p.current_path != self.phase and not p.bytes_total:
            self.phase = p.current_path  # a maintenance phase began: rates start over
            self.samples.clear()
        self.samples.append((now, p.bytes_done, p.items_done))
        while len(self.samples) > 2 and now - self.samples[0][0] > WINDOW_SECONDS:
            self.samples.popleft()
        t0, b0, i0 = self.samples[0]
        span = now - t0
        byte_rate = (p.bytes_done - b0) / span if span > 0 else 0.0
        item_rate = (p.items_done - i0) / span if span > 0 else 0.0
        if p.bytes_total and p.bytes_done <= p.bytes_total:
            # Restores know their size; a backup expects its parent snapshot's.
            share = min(p.bytes_done / p.bytes_total, 1.0)
            left = (p.bytes_total - p.bytes_done) / byte_rate if byte_rate > 0 else None
            return _join(
                f"{share:4.0%}",
                f"{human_size(p.bytes_done)} of {human_size(p.bytes_total)}",
                f"{p.items_done}/{p.items_total} files" if p.items_total else "",
                f"{human_size(int(byte_rate))}/s",
                f"ETA {duration(left)}" if left is not None else "",
                p.current_path[-50:],
            )
        if p.items_total:  # maintenance phases: items of a known count
            share = min(p.items_done / p.items_total, 1.0)
            left = (p.items_total - p.items_done) / item_rate if item_rate > 0 else None
            return _join(
                p.current_path,
                f"{p.items_done}/{p.items_total} ({share:.0%})",
                f"{item_rate:.1f}/s",
                f"ETA {duration(left)}" if left is not None else "",
            )
        return _join(  # backups: the total is not known in advance
            f"{p.items_done} files",
            human_size(p.bytes_done),
            f"{human_size(int(byte_rate))}/s",
            p.current_path[-60:],
        )


def _join(*parts: str) -> str:
    return ", ".join(part for part in parts if part)
