"""bench/run end to end at a tiny scale: every row has a number for every tool and
both ratios, and the JSON matches the printed table."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("comet", "restic", "borg")
RATIOS = ("comet/restic", "comet/borg")


def run_in_own_group(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a process group of its own; past ``timeout`` the whole group (the
    bench's server, agent and mounts too, not only its first process) is killed, so a
    slow run fails without leaving processes behind for the rest of the suite."""
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


@pytest.mark.timeout(300)
def test_tiny_benchmark_fills_every_row(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = run_in_own_group(
        [
            str(ROOT / "bench" / "run"),
            "--scale",
            "0.002",
            "--runs",
            "1",
            "--mount-samples",
            "1",
            "--json",
            str(out),
        ],
        timeout=270,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(out.read_text())
    rows = document["rows"]
    assert {(r["corpus"], r["operation"]) for r in rows} >= {
        ("source", "first_backup"),
        ("large", "restore"),
        ("large", "size_final"),
        ("source", "rss_first_backup"),
    }
    assert len(rows) == 37
    for row in rows:
        # borg has no mount rows: those compare comet mount with restic mount only.
        # Vault reads per restore target are Comet's own figures.
        mount = row["operation"].startswith("mount_")
        reads = row["operation"].startswith("reads_")
        tools = ("comet",) if reads else ("comet", "restic") if mount else TOOLS
        for tool in tools:
            value = row["median"][tool]
            assert isinstance(value, float | int) and math.isfinite(value) and value > 0, row
        for ratio in () if reads else ("comet/restic",) if mount else RATIOS:
            value = row["ratios"][ratio]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, row
    mount_rows = {
        (r["corpus"], r["operation"]) for r in rows if r["operation"].startswith("mount_")
    }
    assert mount_rows == {
        ("source", "mount_first_byte"),
        ("source", "mount_find"),
        ("large", "mount_first_byte"),
        ("large", "mount_read"),
        ("large", "mount_read_rate"),
    }
    assert set(document["tools"]) == set(TOOLS)
    assert "comet/restic" in result.stdout and "peak RSS full restore" in result.stdout
    assert "mount: time to first byte" in result.stdout
