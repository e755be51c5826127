"""The progress line a waiting ``comet`` command draws: rate over recent time, share
done and ETA when the total is known, cut to the terminal's width."""

from __future__ import annotations

from comet.agent.client_cli.progress import ProgressLine, duration
from comet.v1 import common_pb2

MiB = 1 << 20


def test_restore_shows_share_rate_and_eta() -> None:
    line = ProgressLine()
    p = common_pb2.JobProgress
    line.render(p(bytes_done=0, bytes_total=100 * MiB, items_total=10), 0.0)
    text = line.render(
        p(bytes_done=20 * MiB, bytes_total=100 * MiB, items_done=2, items_total=10), 2.0
    )
    assert text.startswith(" 20%") and "10.0 MiB/s" in text and "ETA 8s" in text
    assert "2/10 files" in text


def test_rate_is_measured_over_recent_seconds_not_since_start() -> None:
    line = ProgressLine()
    p = common_pb2.JobProgress
    line.render(p(bytes_done=0), 0.0)
    line.render(p(bytes_done=MiB), 30.0)  # a slow start…
    line.render(p(bytes_done=2 * MiB), 31.0)
    text = line.render(p(bytes_done=12 * MiB), 41.0)  # …then 1 MiB/s for 10 s
    assert "1.0 MiB/s" in text and "12.0 MiB" in text and "ETA" not in text


def test_maintenance_phase_counts_items_and_restarts_per_phase() -> None:
    line = ProgressLine()
    p = common_pb2.JobProgress
    line.render(p(items_total=40, current_path="mark"), 0.0)
    text = line.render(p(items_done=10, items_total=40, current_path="mark"), 5.0)
    assert text == "mark, 10/40 (25%), 2.0/s, ETA 15s"
    text = line.render(p(items_done=0, items_total=8, current_path="repack"), 6.0)
    assert text.startswith("repack, 0/8 (0%)") and "ETA" not in text


def test_line_never_wraps_and_durations_read_well() -> None:
    line = ProgressLine()
    long_path = "/very/long/" + "x" * 200
    text = line.render(common_pb2.JobProgress(items_done=3, current_path=long_path), 0.0, width=40)
    assert len(text) == 39
    assert [duration(s) for s in (4.6, 185, 7800)] == ["5s", "3m05s", "2h10m"]
