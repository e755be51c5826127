"""How sizes, times, durations and job progress read in the app."""

from __future__ import annotations

from datetime import datetime

from comet.agent.output import human_size
from comet.gui.records import Job

size = human_size  # the one byte-size formatter, shared with the command line


def when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def progress_line(job: Job) -> str:
    """Bytes, files, speed, ETA (when the total is known) and the current file."""
    p = job.progress
    elapsed = job.duration_seconds or 0.0
    done = p.bytes_done or job.bytes
    parts = [f"{size(done)}", f"{p.items_done or job.files} files"]
    if elapsed > 0.5 and done:
        speed = done / elapsed
        parts.append(f"{size(speed)}/s")
        if p.bytes_total > done and speed > 0:
            parts.append(f"about {duration((p.bytes_total - done) / speed)} left")
    if p.bytes_total:
        parts[0] = f"{size(done)} of {size(p.bytes_total)}"
    line = ", ".join(parts)
    if p.current_path:
        line += f" — {p.current_path[-80:]}"
    return line
