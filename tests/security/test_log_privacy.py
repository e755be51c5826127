"""A user who does not allow administrators to view their files keeps file names out of
the job logs and live progress the server stores; the device's own log keeps them."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from comet.agent.jobs.codes import Classification, Severity, Status
from comet.agent.jobs.outbox import HIDDEN_FILE_LINE, as_shipped, line_as_shipped
from comet.agent.jobs.record import JobProgress, JobRecord, LogEntry
from comet.agent.jobs.store import JobStore
from tests.fixtures.processes import AdminCli, AgentProcess, wait_for
from tests.security.local_api import set_admin_view_files

SECRET = "q3-layoff-plan.txt"


def backup_with_a_warning(alice: AgentProcess, root: Path) -> str:
    """A backup whose log names a file: an include path that is gone when it runs."""
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "kept.txt").write_text("kept\n")
    gone = root / "gone" / SECRET
    gone.parent.mkdir(exist_ok=True)
    gone.write_text("soon gone\n")
    alice.comet(
        "item", "add", f"docs-{len(list(root.iterdir()))}", "--type", "files",
        "--include", str(root / "src"), "--include", str(gone), "--json",
    )  # fmt: skip
    items = alice.comet("item", "list", "--json").json()
    name = items[-1]["name"]
    gone.unlink()
    job = alice.comet("backup", name, "--vault", "v", "--wait", "--json").json()
    assert job["status"] == "warning", job
    job_id: str = job["job_id"]
    return job_id


def server_log(admin: AdminCli, job_id: str) -> list[dict[str, Any]]:
    def shipped() -> list[dict[str, Any]] | None:
        rows = [j for j in admin("jobs", "--json").json() if j["job_id"] == job_id]
        if not rows or rows[0]["status"] != "warning":
            return None
        entries: list[dict[str, Any]] = admin("job", "log", job_id, "--json").json()
        return entries if any(e["severity"] == "W" for e in entries) else None

    result: list[dict[str, Any]] = wait_for(shipped, timeout=30, what="the job on the server")
    return result


@pytest.mark.timeout(300)
def test_file_names_reach_the_server_only_with_the_users_consent(
    alice: AgentProcess, admin: AdminCli, short_tmp: Path
) -> None:
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    set_admin_view_files(alice, False)
    private_job = backup_with_a_warning(alice, short_tmp)

    on_server = server_log(admin, private_job)
    assert not any(SECRET in e["message"] for e in on_server), on_server
    assert any(e["message"] == HIDDEN_FILE_LINE for e in on_server), on_server
    local = alice.comet("job", "log", private_job).stdout
    assert SECRET in local  # the user's own log is whole

    set_admin_view_files(alice, True)
    consented_job = backup_with_a_warning(alice, short_tmp)
    assert any(SECRET in e["message"] for e in server_log(admin, consented_job))


def test_shipping_hides_named_lines_and_the_current_path_only_when_asked() -> None:
    named = LogEntry(1, 5, Severity.WARNING, f"/home/a/{SECRET}: vanished", about_file=True)
    plain = LogEntry(2, 6, Severity.INFO, "snapshot saved: 3 files")
    assert line_as_shipped(named, False) == named
    assert line_as_shipped(plain, True) == plain
    hidden = line_as_shipped(named, True)
    assert hidden.message == HIDDEN_FILE_LINE and SECRET not in hidden.message
    assert (hidden.seq, hidden.time_ns, hidden.severity) == (1, 5, Severity.WARNING)

    progress = JobProgress(bytes_done=10, current_path=f"/home/a/{SECRET}")
    job = JobRecord("j", Classification.BACKUP, Status.RUNNING, "d", "alice", progress=progress)
    assert as_shipped(job, False) == job
    shipped = as_shipped(job, True)
    assert shipped.progress.current_path == "" and shipped.progress.bytes_done == 10
    assert replace(shipped, progress=job.progress) == job


def test_a_job_store_from_an_older_agent_opens_and_keeps_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    store = JobStore(path)
    store.close()
    with sqlite3.connect(path) as db:  # the log table as an older agent wrote it
        db.execute("DROP TABLE job_log")
        db.execute(
            "CREATE TABLE job_log (job_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "time_ns INTEGER NOT NULL, severity INTEGER NOT NULL, message TEXT NOT NULL, "
            "PRIMARY KEY (job_id, seq))"
        )
        db.execute("INSERT INTO job_log VALUES ('j', 1, 5, ?, 'old line')", (int(Severity.INFO),))
    store = JobStore(path)
    try:
        store.append_log("j", [LogEntry(2, 6, Severity.WARNING, "/x: gone", about_file=True)])
        assert store.log("j") == [
            LogEntry(1, 5, Severity.INFO, "old line"),
            LogEntry(2, 6, Severity.WARNING, "/x: gone", about_file=True),
        ]
    finally:
        store.close()
