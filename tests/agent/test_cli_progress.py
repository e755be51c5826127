"""The ``--wait`` progress line: what it says for byte-moving jobs and maintenance
phases, its rate over a sliding window, its ETA, and its width."""

from __future__ import annotations

import io

from comet.agent.client_cli.progress import (
    CLEAR_LINE,
    Progress,
    ProgressLine,
    duration,
    progress_text,
)

MiB = 1 << 20


def test_a_restore_shows_share_counts_rate_and_eta() -> None:
    p = Progress(25 * MiB, 100 * MiB, 10, 40, "/home/alice/photos/2024/img_0001.jpg")
    text = progress_text(p, rate=5 * MiB, width=200)
    assert text == (
        "25%, 10/40 files, 25.0 MiB/100.0 MiB, 5.0 MiB/s, ETA 0:15"
        "  /home/alice/photos/2024/img_0001.jpg"
    )


def test_a_first_backup_has_no_total_so_no_eta() -> None:
    text = progress_text(Progress(3 * MiB, 0, 7, 0, ""), rate=MiB, width=200)
    assert text == "7 files, 3.0 MiB, 1.0 MiB/s"


def test_a_backup_larger_than_its_estimate_drops_share_and_eta() -> None:
    text = progress_text(Progress(12 * MiB, 10 * MiB, 5, 4, ""), rate=MiB, width=200)
    assert "%" not in text and "ETA" not in text and "12.0 MiB/10.0 MiB" in text


def test_a_maintenance_phase_counts_items() -> None:
    text = progress_text(Progress(0, 0, 30, 120, "checking packs"), rate=3.0, width=200)
    assert text == "25%, 30/120, 3.0/s, ETA 0:30  checking packs"


def test_the_line_fits_the_terminal_and_keeps_the_end_of_the_path() -> None:
    path = "/very/long/" + "x" * 200 + "/file.txt"
    text = progress_text(Progress(MiB, 2 * MiB, 1, 2, path), rate=MiB, width=80)
    assert len(text) == 80 and text.endswith("/file.txt") and "…" in text


def test_durations() -> None:
    assert [duration(s) for s in (7, 750, 11099, 0.4)] == ["0:07", "12:30", "3:04:59", "0:00"]


def test_rate_is_measured_over_the_recent_window_and_restarts_per_phase() -> None:
    now = [0.0]
    out = io.StringIO()
    line = ProgressLine(out, clock=lambda: now[0], width=100)
    for second in range(32):
        now[0] = float(second)
        # 1 MiB/s for 20 s, then 4 MiB/s: the window forgets the slow start.
        done = second * MiB if second <= 20 else (20 + 4 * (second - 20)) * MiB
        line.update(Progress(done, 100 * MiB, second, 100, ""))
    assert "4.0 MiB/s" in out.getvalue().split(CLEAR_LINE)[-1]
    now[0] += 1
    assert line.rate(Progress(0, 0, 5, 10, "rebuilding indexes")) == 0.0  # a new phase
    now[0] += 2
    assert line.rate(Progress(0, 0, 11, 20, "rebuilding indexes")) == 3.0


def test_redraws_are_throttled_and_log_lines_go_above() -> None:
    now = [0.0]
    out = io.StringIO()
    line = ProgressLine(out, clock=lambda: now[0], width=100)
    for i in range(100):
        now[0] = i / 1000  # 100 reports in 0.1 s
        line.update(Progress(i, 1000, i, 0, ""))
    assert out.getvalue().count(CLEAR_LINE) == 1
    line.message("snapshot saved")
    line.update(Progress(1000, 1000, 1, 0, ""), force=True)
    line.clear()
    assert out.getvalue() == (
        f"{CLEAR_LINE}0%, 0 files, 0 B/1000 B"
        f"{CLEAR_LINE}snapshot saved\n"
        f"{CLEAR_LINE}100%, 1 files, 1000 B/1000 B"
        f"{CLEAR_LINE}"
    )
