"""Job records and logs in the agent's SQLite database, written before anything is
sent anywhere. A ``dirty`` mark is the durable outbox: it is cleared only when the
server has acknowledged the job's latest state."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from comet.agent.jobs.codes import Classification, Severity, Status
from comet.agent.jobs.record import JobCounters, JobProgress, JobRecord, LogEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    classification INTEGER NOT NULL,
    status INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    username TEXT NOT NULL,
    item_id TEXT NOT NULL,
    vault_id TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER NOT NULL,
    snapshot_id TEXT NOT NULL,
    error TEXT NOT NULL,
    client_version TEXT NOT NULL,
    files INTEGER NOT NULL, directories INTEGER NOT NULL, bytes INTEGER NOT NULL,
    uploaded_bytes INTEGER NOT NULL, downloaded_bytes INTEGER NOT NULL,
    progress_counter INTEGER NOT NULL, bytes_done INTEGER NOT NULL, items_done INTEGER NOT NULL,
    bytes_total INTEGER NOT NULL, items_total INTEGER NOT NULL, current_path TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 1,
    sent_seq INTEGER NOT NULL DEFAULT 0,
    rejected TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_started ON jobs (started_ns);
CREATE INDEX IF NOT EXISTS jobs_dirty ON jobs (dirty);
CREATE TABLE IF NOT EXISTS job_log (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    message TEXT NOT NULL,
    about_file INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, seq)
);
"""

_COLUMNS = (
    "job_id, classification, status, device_id, username, item_id, vault_id, started_ns, "
    "ended_ns, snapshot_id, error, client_version, files, directories, bytes, uploaded_bytes, "
    "downloaded_bytes, progress_counter, bytes_done, items_done, bytes_total, items_total, "
    "current_path"
)

_UPDATES = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _COLUMNS.split(","))


@dataclass(frozen=True)
class JobQuery:
    statuses: tuple[Status, ...] = ()
    classifications: tuple[Classification, ...] = ()
    item_id: str = ""
    vault_id: str = ""
    since_ns: int = 0
    limit: int = 500


class JobStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "rejected" not in columns:  # a store written by an older agent
            self._db.execute("ALTER TABLE jobs ADD COLUMN rejected TEXT NOT NULL DEFAULT ''")
        log_columns = {row[1] for row in self._db.execute("PRAGMA table_info(job_log)")}
        if "about_file" not in log_columns:
            self._db.execute("ALTER TABLE job_log ADD COLUMN about_file INTEGER NOT NULL DEFAULT 0")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, job: JobRecord) -> None:
        """Insert or update the job and mark it for sending."""
        c, p = job.counters, job.progress
        values = (
            job.job_id, int(job.classification), int(job.status), job.device_id, job.username,
            job.item_id, job.vault_id, job.started_ns, job.ended_ns, job.snapshot_id, job.error,
            job.client_version, c.files, c.directories, c.bytes, c.uploaded_bytes,
            c.downloaded_bytes, p.counter, p.bytes_done, p.items_done, p.bytes_total,
            p.items_total, p.current_path,
        )  # fmt: skip
        placeholders = ", ".join("?" * len(values))
        with self._lock:
            self._db.execute(
                f"INSERT INTO jobs ({_COLUMNS}, dirty) VALUES ({placeholders}, 1) "
                "ON CONFLICT(job_id) DO UPDATE SET "
                + ", ".join(
                    f"{col.strip()} = excluded.{col.strip()}" for col in _COLUMNS.split(",")
                )
                + ", dirty = 1, rejected = ''",
                values,
            )

    def append_log(self, job_id: str, entries: Iterable[LogEntry]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO job_log "
                "(job_id, seq, time_ns, severity, message, about_file) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (job_id, e.seq, e.time_ns, int(e.severity), e.message, int(e.about_file))
                    for e in entries
                ],
            )
            # New lines are a new state of the job: worth offering even after a refusal.
            self._db.execute("UPDATE jobs SET dirty = 1, rejected = '' WHERE job_id = ?", (job_id,))
            self._db.execute("COMMIT")

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        return None if row is None else _record(row)

    def log(self, job_id: str, *, after_seq: int = 0) -> list[LogEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, time_ns, severity, message, about_file FROM job_log "
                "WHERE job_id = ? AND seq > ? ORDER BY seq",
                (job_id, after_seq),
            ).fetchall()
        return [LogEntry(r[0], r[1], Severity(r[2]), r[3], bool(r[4])) for r in rows]

    def query(self, q: JobQuery) -> list[JobRecord]:
        where, args = ["started_ns >= ?"], [q.since_ns]
        if q.statuses:
            where.append(f"status IN ({', '.join('?' * len(q.statuses))})")
            args += [int(s) for s in q.statuses]
        if q.classifications:
            where.append(f"classification IN ({', '.join('?' * len(q.classifications))})")
            args += [int(c) for c in q.classifications]
        if q.item_id:
            where.append("item_id = ?")
            args.append(q.item_id)  # type: ignore[arg-type]
        if q.vault_id:
            where.append("vault_id = ?")
            args.append(q.vault_id)  # type: ignore[arg-type]
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(where)} "
                "ORDER BY started_ns DESC LIMIT ?",
                (*args, q.limit),
            ).fetchall()
        return [_record(r) for r in rows]

    def running(self) -> list[JobRecord]:
        running = [int(s) for s in Status if s.running]
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE status IN ({', '.join('?' * len(running))})",
                running,
            ).fetchall()
        return [_record(r) for r in rows]

    # ------------------------------------------------------------ outbox

    def dirty(self, limit: int = 50, *, skip: Iterable[str] = ()) -> list[tuple[JobRecord, int]]:
        """Jobs whose latest state the server has not acknowledged and has not refused,
        oldest first, with the last log sequence number it has; ``skip`` leaves out
        jobs whose retry is not due yet."""
        skipped = list(skip)
        where = "dirty = 1 AND rejected = ''"
        if skipped:
            where += f" AND job_id NOT IN ({', '.join('?' * len(skipped))})"
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, sent_seq FROM jobs WHERE {where} ORDER BY started_ns LIMIT ?",
                (*skipped, limit),
            ).fetchall()
        return [(_record(r[:-1]), int(r[-1])) for r in rows]

    def reject(self, job_id: str, reason: str) -> None:
        """The server refused the job's current state for good: keep it, with the
        reason, out of the outbox until the job changes again."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET rejected = ? WHERE job_id = ?", (reason or "refused", job_id)
            )

    def outbox_counts(self) -> tuple[int, int]:
        """(records waiting to be sent, records the server refused)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(dirty = 1 AND rejected = ''), 0), "
                "COALESCE(SUM(rejected != ''), 0) FROM jobs"
            ).fetchone()
        return int(row[0]), int(row[1])

    def latest_rejection(self) -> tuple[str, str] | None:
        """(job id, reason) of the newest job the server refused, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, rejected FROM jobs WHERE rejected != '' "
                "ORDER BY started_ns DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def mark_sent(self, job: JobRecord, sent_seq: int) -> None:
        """Clear the mark unless the job changed again since it was read."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET sent_seq = ?, dirty = CASE WHEN status = ? AND "
                "progress_counter = ? AND ended_ns = ? AND "
                "NOT EXISTS (SELECT 1 FROM job_log l WHERE l.job_id = jobs.job_id AND l.seq > ?) "
                "THEN 0 ELSE 1 END WHERE job_id = ?",
                (
                    sent_seq,
                    int(job.status),
                    job.progress.counter,
                    job.ended_ns,
                    sent_seq,
                    job.job_id,
                ),
            )


def _record(row: tuple[object, ...]) -> JobRecord:
    r = list(row)
    return JobRecord(
        job_id=str(r[0]),
        classification=Classification(int(str(r[1]))),
        status=Status(int(str(r[2]))),
        device_id=str(r[3]),
        username=str(r[4]),
        item_id=str(r[5]),
        vault_id=str(r[6]),
        started_ns=int(str(r[7])),
        ended_ns=int(str(r[8])),
        snapshot_id=str(r[9]),
        error=str(r[10]),
        client_version=str(r[11]),
        counters=JobCounters(*(int(str(v)) for v in r[12:17])),
        progress=JobProgress(
            counter=int(str(r[17])),
            bytes_done=int(str(r[18])),
            items_done=int(str(r[19])),
            bytes_total=int(str(r[20])),
            items_total=int(str(r[21])),
            current_path=str(r[22]),
        ),
    )
