"""Cancellation bites within seconds: stop-after on a program that ignores SIGTERM, a
slow files backup whose finished packs are kept as a checkpoint, and SIGTERM to the
agent while a job runs. Real agent processes, real programs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.fixtures.processes import AgentProcess

STUBBORN = "trap '' TERM; sleep 120"
CANCELLED = 7005


def vault(alice: AgentProcess, tmp: Path) -> None:
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(tmp / "vault"))


def stubborn_item(alice: AgentProcess, tmp: Path) -> None:
    vault(alice, tmp)
    alice.comet(
        "item", "add", "stubborn", "--type", "program", "--command", STUBBORN,
        "--save-as", "out.txt",
    )  # fmt: skip


def job_log(alice: AgentProcess, job_id: str) -> str:
    entries: list[dict[str, Any]] = alice.comet("job", "log", job_id, "--json").json()["entries"]
    return "\n".join(e["message"] for e in entries)


def test_stop_after_stops_a_program_that_ignores_sigterm(
    alice: AgentProcess, short_tmp: Path
) -> None:
    stubborn_item(alice, short_tmp)
    started = time.monotonic()
    result = alice.comet(
        "backup", "stubborn", "--vault", "v", "--stop-after", "3", "--wait", "--json",
        check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    job = result.json()
    assert result.returncode != 0
    assert job["status_code"] == CANCELLED and job["status"] == "cancelled"
    assert took < 10, f"stop-after 3 took {took:.1f} s"
    assert "3 s limit" in job_log(alice, job["job_id"])
    # Nothing the program started is left behind.
    assert not [p for p in _processes() if "sleep 120" in p]


def test_a_person_cancelling_a_stubborn_program_job_stops_it_within_seconds(
    alice: AgentProcess, short_tmp: Path
) -> None:
    stubborn_item(alice, short_tmp)
    job = alice.comet("backup", "stubborn", "--vault", "v", "--json").json()
    time.sleep(1)
    started = time.monotonic()
    ended = alice.comet("job", "cancel", job["job_id"], "--wait", "--json").json()
    assert ended["status_code"] == CANCELLED
    assert time.monotonic() - started < 10
    assert "cancelled by a person" in job_log(alice, job["job_id"])
    assert not [p for p in _processes() if "sleep 120" in p]


def test_a_cancelled_slow_backup_keeps_its_finished_packs_for_the_next_run(
    alice: AgentProcess, short_tmp: Path
) -> None:
    vault(alice, short_tmp)
    source = short_tmp / "big"
    source.mkdir()
    for n in range(6):  # 48 MiB that does not compress or deduplicate
        (source / f"part{n}.bin").write_bytes(os.urandom(8 << 20))
    alice.comet("item", "add", "big", "--type", "files", "--include", str(source))

    started = time.monotonic()
    first = alice.comet(
        "backup", "big", "--vault", "v", "--bandwidth-limit", str(8 << 20),
        "--stop-after", "4", "--wait", "--json", check=False,
    ).json()  # fmt: skip
    assert time.monotonic() - started < 10
    assert first["status_code"] == CANCELLED
    assert "checkpoint" in job_log(alice, first["job_id"])
    assert first["uploaded_bytes"] >= 16 << 20  # at least one finished pack

    second = alice.comet("backup", "big", "--vault", "v", "--wait", "--json").json()
    assert second["status"] == "success" and second["bytes"] == 48 << 20
    # The packs of the cancelled run are reused, not uploaded again.
    assert second["uploaded_bytes"] <= (48 << 20) - first["uploaded_bytes"] + (1 << 20)


def test_sigterm_to_the_agent_ends_it_within_10s_and_records_the_job_cancelled(
    alice: AgentProcess, short_tmp: Path
) -> None:
    stubborn_item(alice, short_tmp)
    job = alice.comet("backup", "stubborn", "--vault", "v", "--json").json()
    time.sleep(1)  # the program is running
    assert alice.proc is not None
    started = time.monotonic()
    alice.proc.send_signal(signal.SIGTERM)
    code = alice.proc.wait(timeout=30)
    took = time.monotonic() - started
    alice.proc = None
    assert code == 0 and took < 10, f"agent took {took:.1f} s to stop (exit {code})"
    assert not [p for p in _processes() if "sleep 120" in p]

    alice.start()
    history = alice.comet("history", "--json").json()
    (row,) = [j for j in history if j["job_id"] == job["job_id"]]
    assert row["status_code"] == CANCELLED
    assert "shutting down" in job_log(alice, job["job_id"])


def _processes() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found
