"""Job history: idempotent reports from devices, queries, logs, and the server's own
bookkeeping (abandoned jobs, log pruning, missed scheduled runs)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.clock import Clock
from comet.server.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from comet.server.store.models import Job, JobLogEntry, User

MAX_INT64 = (1 << 63) - 1
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class JobStatus(IntEnum):
    """Values match ``comet.v1.JobStatus`` (Comet's published codes)."""

    SUCCESS = 5000
    RUNNING = 6001
    RUNNING_REVIVED = 6002
    WAITING_TO_RETRY = 6003
    TIMEOUT = 7000
    WARNING = 7001
    ERROR = 7002
    QUOTA_EXCEEDED = 7003
    MISSED = 7004
    CANCELLED = 7005
    SKIPPED = 7006
    ABANDONED = 7007

    @property
    def is_running(self) -> bool:
        return 6000 <= self < 7000


class JobClassification(IntEnum):
    """Values match ``comet.v1.JobClassification``."""

    UNKNOWN = 4000
    BACKUP = 4001
    RESTORE = 4002
    RETENTION = 4003
    UNLOCK = 4004
    DELETE_SNAPSHOT = 4005
    REMEASURE = 4006
    SOFTWARE_UPDATE = 4007
    IMPORT = 4008
    REINDEX = 4009
    DEEP_VERIFY = 4010
    UNINSTALL = 4011


class Severity(IntEnum):
    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4


@dataclass(frozen=True)
class JobCounters:
    files: int = 0
    directories: int = 0
    bytes: int = 0
    chunks: int = 0
    uploaded_bytes: int = 0
    downloaded_bytes: int = 0


@dataclass(frozen=True)
class JobProgress:
    counter: int = 0
    bytes_done: int = 0
    items_done: int = 0
    bytes_total: int = 0
    items_total: int = 0
    current_path: str = ""


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    classification: JobClassification
    status: JobStatus
    started_at: datetime | None = None
    ended_at: datetime | None = None
    username: str = ""
    device_id: str = ""
    item_id: str = ""
    vault_id: str = ""
    counters: JobCounters = field(default_factory=JobCounters)
    progress: JobProgress = field(default_factory=JobProgress)
    snapshot_id: str = ""
    client_version: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class LogLine:
    seq: int
    time: datetime | None  # None: the time the server receives it
    severity: Severity
    message: str


@dataclass(frozen=True)
class JobQuery:
    """Filters are combined with AND; empty ones do not filter."""

    user_id: str = ""
    username: str = ""
    device_id: str = ""
    item_id: str = ""
    vault_id: str = ""
    statuses: tuple[JobStatus, ...] = ()
    classifications: tuple[JobClassification, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRecord]
    next_page_token: str


def _clamp(value: int) -> int:
    return max(0, min(int(value), MAX_INT64))


def _encode_token(job: Job) -> str:
    raw = json.dumps({"s": job.started_at.isoformat(), "j": job.job_id}).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        return datetime.fromisoformat(data["s"]), str(data["j"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidRequestError("the page token is not valid; start from the first page") from e


def _record(job: Job, username: str) -> JobRecord:
    return JobRecord(
        job_id=job.job_id,
        username=username,
        device_id=job.device_id,
        item_id=job.item_id,
        vault_id=job.vault_id,
        classification=JobClassification(job.classification),
        status=JobStatus(job.status),
        started_at=job.started_at,
        ended_at=job.ended_at,
        counters=JobCounters(
            job.files,
            job.directories,
            job.bytes,
            job.chunks,
            job.uploaded_bytes,
            job.downloaded_bytes,
        ),
        progress=JobProgress(
            job.progress_counter,
            job.progress_bytes_done,
            job.progress_items_done,
            job.progress_bytes_total,
            job.progress_items_total,
            job.progress_current_path,
        ),
        snapshot_id=job.snapshot_id,
        client_version=job.client_version,
        error_message=job.error_message,
    )


def _next_status(stored: JobStatus, reported: JobStatus) -> JobStatus:
    """Abandoned + running again = revived; a revived job stays revived while it runs;
    an ended job is not set running again by a late, stale report."""
    if reported.is_running:
        if stored is JobStatus.ABANDONED or stored is JobStatus.RUNNING_REVIVED:
            return JobStatus.RUNNING_REVIVED
        if not stored.is_running:
            return stored
    return reported


class JobStore:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # ------------------------------------------------------------------ reports

    async def report(
        self, *, user_id: str, device_id: str, job: JobRecord, log: list[LogLine]
    ) -> int:
        """Records a device's report of its job; returns the highest log seq stored.

        Idempotent: keyed by job id; log lines by (job id, seq); progress only when
        its counter is newer. The job must be the reporting device's own
        (PermissionDeniedError otherwise)."""
        if not job.job_id or len(job.job_id) > 64:
            raise InvalidRequestError("a job report needs a job id of at most 64 characters")
        status = job.status
        if status in (JobStatus.ABANDONED, JobStatus.MISSED):
            raise InvalidRequestError(f"the status {status.name} is set by the server only")
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            await s.execute(
                insert(Job)
                .values(
                    job_id=job.job_id,
                    user_id=user_id,
                    device_id=device_id,
                    classification=int(job.classification),
                    status=int(JobStatus.RUNNING),
                    started_at=job.started_at or now,
                    last_report_at=now,
                )
                .on_conflict_do_nothing(index_elements=["job_id"])
            )
            row = await s.get(Job, job.job_id, with_for_update=True, populate_existing=True)
            assert row is not None
            if row.device_id != device_id or row.user_id != user_id:
                raise PermissionDeniedError(f"job {job.job_id} belongs to another device")
            stored = JobStatus(row.status)
            new_status = _next_status(stored, status)
            if new_status is JobStatus.RUNNING_REVIVED and stored is JobStatus.ABANDONED:
                await self._server_line(
                    s, row.job_id, now, Severity.WARNING, "the device reported again: job revived"
                )
            if new_status is not stored or stored.is_running or new_status is status:
                self._apply(row, job, new_status, now)
            # else: a late "running" report of an ended job; only its log lines count.
            await self._add_lines(s, row.job_id, log)
            last = await s.scalar(
                select(func.max(JobLogEntry.seq)).where(
                    JobLogEntry.job_id == row.job_id, JobLogEntry.seq >= 0
                )
            )
        return int(last or 0)

    @staticmethod
    def _apply(row: Job, job: JobRecord, status: JobStatus, now: datetime) -> None:
        row.status = int(status)
        row.classification = int(job.classification)
        row.item_id = job.item_id[:64]
        row.vault_id = job.vault_id[:64]
        if job.started_at is not None:
            row.started_at = job.started_at
        row.ended_at = None if status.is_running else (job.ended_at or row.ended_at or now)
        c = job.counters
        row.files, row.directories, row.bytes = (
            _clamp(c.files),
            _clamp(c.directories),
            _clamp(c.bytes),
        )
        row.chunks, row.uploaded_bytes = _clamp(c.chunks), _clamp(c.uploaded_bytes)
        row.downloaded_bytes = _clamp(c.downloaded_bytes)
        p = job.progress
        if p.counter > row.progress_counter:
            row.progress_counter = _clamp(p.counter)
            row.progress_bytes_done = _clamp(p.bytes_done)
            row.progress_items_done = _clamp(p.items_done)
            row.progress_bytes_total = _clamp(p.bytes_total)
            row.progress_items_total = _clamp(p.items_total)
            row.progress_current_path = p.current_path
        row.snapshot_id = job.snapshot_id
        row.client_version = job.client_version
        row.error_message = job.error_message
        row.last_report_at = now

    async def _add_lines(self, s: AsyncSession, job_id: str, log: list[LogLine]) -> None:
        if not log:
            return
        now = self._clock.now()
        await s.execute(
            insert(JobLogEntry)
            .values(
                [
                    {
                        "job_id": job_id,
                        "seq": _clamp(line.seq),
                        "time": line.time or now,
                        "severity": int(line.severity),
                        "message": line.message,
                    }
                    for line in log
                ]
            )
            .on_conflict_do_nothing(index_elements=["job_id", "seq"])
        )

    async def _server_line(
        self, s: AsyncSession, job_id: str, when: datetime, severity: Severity, message: str
    ) -> None:
        lowest = await s.scalar(
            select(func.min(JobLogEntry.seq)).where(JobLogEntry.job_id == job_id)
        )
        seq = min(int(lowest or 0), 0) - 1
        s.add(
            JobLogEntry(job_id=job_id, seq=seq, time=when, severity=int(severity), message=message)
        )

    # ------------------------------------------------------------------ queries

    async def find(self, query: JobQuery) -> JobPage:
        """Newest first, ``page_size`` at a time (default 100, at most 1000)."""
        size = min(query.page_size or DEFAULT_PAGE, MAX_PAGE)
        stmt = select(Job, User.username).join(User, User.id == Job.user_id)
        conditions = []
        if query.user_id:
            conditions.append(Job.user_id == query.user_id)
        if query.username:
            conditions.append(User.username == query.username)
        for column, value in (
            (Job.device_id, query.device_id),
            (Job.item_id, query.item_id),
            (Job.vault_id, query.vault_id),
        ):
            if value:
                conditions.append(column == value)
        if query.statuses:
            conditions.append(Job.status.in_([int(x) for x in query.statuses]))
        if query.classifications:
            conditions.append(Job.classification.in_([int(x) for x in query.classifications]))
        if query.since is not None:
            conditions.append(Job.started_at >= query.since)
        if query.until is not None:
            conditions.append(Job.started_at < query.until)
        if query.page_token:
            after_time, after_id = _decode_token(query.page_token)
            conditions.append(tuple_(Job.started_at, Job.job_id) < tuple_(after_time, after_id))
        stmt = (
            stmt.where(*conditions)
            .order_by(Job.started_at.desc(), Job.job_id.desc())
            .limit(size + 1)
        )
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        token = _encode_token(rows[size - 1][0]) if len(rows) > size else ""
        return JobPage([_record(job, name) for job, name in rows[:size]], token)

    async def log(self, job_id: str, *, user_id: str = "") -> tuple[JobRecord, list[LogLine]]:
        """A job and its log in time order; with ``user_id``, only that account's job."""
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(Job, User.username)
                    .join(User, User.id == Job.user_id)
                    .where(Job.job_id == job_id)
                )
            ).first()
            if row is None or (user_id and row[0].user_id != user_id):
                raise NotFoundError(f"no job {job_id!r}")
            lines = await s.scalars(
                select(JobLogEntry)
                .where(JobLogEntry.job_id == job_id)
                # Same instant: the server's lines (negative seqs, in the order they
                # were added) before the device's.
                .order_by(JobLogEntry.time, JobLogEntry.seq >= 0, func.abs(JobLogEntry.seq))
            )
            log = [LogLine(e.seq, e.time, Severity(e.severity), e.message) for e in lines]
        return _record(row[0], row[1]), log

    # ------------------------------------------------------------------ bookkeeping

    async def abandon_silent(self, timeout: timedelta) -> list[str]:
        """Running jobs with no report for ``timeout`` become Abandoned (7007), each
        with a log line. Safe to run on several instances at once."""
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            ids = list(
                await s.scalars(
                    update(Job)
                    .where(
                        Job.status.in_([int(JobStatus.RUNNING), int(JobStatus.RUNNING_REVIVED)]),
                        Job.last_report_at < now - timeout,
                    )
                    .values(status=int(JobStatus.ABANDONED), ended_at=Job.last_report_at)
                    .returning(Job.job_id)
                )
            )
            minutes = int(timeout.total_seconds() // 60)
            for job_id in ids:
                await self._server_line(
                    s,
                    job_id,
                    now,
                    Severity.ERROR,
                    f"the device stopped reporting for {minutes} minutes: job abandoned",
                )
        return ids

    async def prune_logs(self, older_than: timedelta) -> int:
        """Deletes log lines older than ``older_than``; returns how many."""
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                delete(JobLogEntry).where(JobLogEntry.time < self._clock.now() - older_than)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def record_missed(
        self,
        *,
        user_id: str,
        device_id: str,
        item_id: str,
        vault_id: str,
        schedule_id: str,
        expected: datetime,
    ) -> str | None:
        """Records a MISSED job for one expected run; returns its id, or None when it
        was recorded before (the id derives from the schedule and the run time)."""
        job_id = str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"comet-missed:{schedule_id}:{expected.isoformat()}")
        )
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                insert(Job)
                .values(
                    job_id=job_id,
                    user_id=user_id,
                    device_id=device_id,
                    item_id=item_id,
                    vault_id=vault_id,
                    classification=int(JobClassification.BACKUP),
                    status=int(JobStatus.MISSED),
                    started_at=expected,
                    ended_at=expected,
                    last_report_at=now,
                )
                .on_conflict_do_nothing(index_elements=["job_id"])
                .returning(Job.job_id)
            )
            if result.scalar() is None:
                return None
            await self._server_line(
                s,
                job_id,
                now,
                Severity.ERROR,
                f"the scheduled backup due at {expected.isoformat()} did not run",
            )
        return job_id

    async def started_between(
        self, *, device_id: str, item_id: str, vault_id: str, start: datetime, end: datetime
    ) -> list[datetime]:
        """Start times of the device's jobs for item x vault within [start, end]."""
        async with self._sessions() as s:
            rows = await s.scalars(
                select(Job.started_at).where(
                    Job.device_id == device_id,
                    Job.item_id == item_id,
                    Job.vault_id == vault_id,
                    Job.started_at >= start,
                    Job.started_at <= end,
                )
            )
            return list(rows)
