"""Job history: idempotent reports from devices, queries, logs, and the server's own
bookkeeping (abandoned jobs, log pruning, missed scheduled runs)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy import (
    column as value_column,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.clock import Clock
from comet.server.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from comet.server.progress import PendingProgress, ProgressBuffer
from comet.server.store import partitions
from comet.server.store.availability import is_database_unavailable
from comet.server.store.models import Job, JobId, JobLogEntry, User

logger = logging.getLogger(__name__)

MAX_INT64 = (1 << 63) - 1
DEFAULT_PAGE = 100
MAX_PAGE = 1000
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])
# The columns of ``JobStore.export_rows`` (started_at 6th: the page token needs it).
EXPORT_COLUMNS = (
    Job.job_id, User.username, Job.device_id, Job.classification, Job.status,
    Job.started_at, Job.ended_at, Job.item_id, Job.vault_id, Job.bytes, Job.files,
    Job.uploaded_bytes, Job.error_message,
)  # fmt: skip


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


class AbandonedBy(IntEnum):
    """Values match ``comet.v1.AbandonedBy``: who ended a job as ABANDONED."""

    NONE = 0
    SERVER_TIMEOUT = 1
    AGENT_RESTART = 2


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
    abandoned_by: AbandonedBy = AbandonedBy.NONE


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
    return _token(job.started_at, job.job_id)


def _token(started_at: datetime, job_id: str) -> str:
    raw = json.dumps({"s": started_at.isoformat(), "j": job_id}).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        return datetime.fromisoformat(data["s"]), str(data["j"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidRequestError("the page token is not valid; start from the first page") from e


def _filtered(stmt: AnySelect, query: JobQuery) -> AnySelect:
    """``stmt`` (over jobs, joined to their owners here) narrowed by ``query``'s filters
    and page token, newest first."""
    stmt = stmt.select_from(Job).join(User, User.id == Job.user_id)
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
    return stmt.where(*conditions).order_by(Job.started_at.desc(), Job.job_id.desc())


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
        abandoned_by=AbandonedBy(job.abandoned_by),
    )


def _next_status(stored: JobStatus, reported: JobStatus) -> JobStatus:
    """Abandoned + running again = revived; a revived job stays revived while it runs;
    an ended job is not set running again by a late, stale report. A device's own
    report that it abandoned the job (its agent stopped while it ran) ends a running
    job, and only that: it never overrides how an ended job ended."""
    if reported is JobStatus.ABANDONED:
        return reported if stored.is_running or stored is JobStatus.ABANDONED else stored
    if reported.is_running:
        if stored is JobStatus.ABANDONED or stored is JobStatus.RUNNING_REVIVED:
            return JobStatus.RUNNING_REVIVED
        if not stored.is_running:
            return stored
    return reported


RUNNING_STATES = (int(JobStatus.RUNNING), int(JobStatus.RUNNING_REVIVED))
# At most this many running jobs are remembered for coalescing; beyond it the oldest
# is forgotten (its next report is simply written through).
MAX_KNOWN_JOBS = 100_000
# Jobs per flush statement (and transaction).
FLUSH_CHUNK = 5000


@dataclass(frozen=True)
class _Known:
    """What this instance last wrote for a running job: enough to tell whether the
    next report changes anything but its progress."""

    user_id: str
    device_id: str
    status: JobStatus
    signature: tuple[object, ...]
    last_log_seq: int

    def takes_progress_only(self, user_id: str, device_id: str, job: JobRecord) -> bool:
        return (
            self.user_id == user_id
            and self.device_id == device_id
            and self.status.is_running
            and _next_status(self.status, job.status) is self.status
            and _signature(job) == self.signature
        )


def _signature(job: JobRecord) -> tuple[object, ...]:
    """Everything a report sets apart from progress, as stored."""
    c = job.counters
    counters = (c.files, c.directories, c.bytes, c.chunks, c.uploaded_bytes, c.downloaded_bytes)
    return (
        int(job.classification),
        job.item_id[:64],
        job.vault_id[:64],
        job.started_at,
        tuple(_clamp(n) for n in counters),
        job.snapshot_id,
        job.client_version,
        job.error_message,
    )


def _newest(progress: JobProgress, pending: PendingProgress | None) -> JobProgress:
    if pending is not None and pending.progress.counter > progress.counter:
        return pending.progress
    return progress


def _progress_values(p: JobProgress) -> dict[str, object]:
    return {
        "progress_counter": _clamp(p.counter),
        "progress_bytes_done": _clamp(p.bytes_done),
        "progress_items_done": _clamp(p.items_done),
        "progress_bytes_total": _clamp(p.bytes_total),
        "progress_items_total": _clamp(p.items_total),
        "progress_current_path": p.current_path,
    }


def _report_values(job: JobRecord, status: JobStatus) -> dict[str, object]:
    """Columns a report sets whenever it is applied (not progress, times, owner)."""
    c = job.counters
    return {
        "status": int(status),
        "classification": int(job.classification),
        "item_id": job.item_id[:64],
        "vault_id": job.vault_id[:64],
        "files": _clamp(c.files),
        "directories": _clamp(c.directories),
        "bytes": _clamp(c.bytes),
        "chunks": _clamp(c.chunks),
        "uploaded_bytes": _clamp(c.uploaded_bytes),
        "downloaded_bytes": _clamp(c.downloaded_bytes),
        "snapshot_id": job.snapshot_id,
        "client_version": job.client_version,
        "error_message": job.error_message,
        # Devices report ABANDONED only for jobs their own restart cut off.
        "abandoned_by": int(
            AbandonedBy.AGENT_RESTART if status is JobStatus.ABANDONED else AbandonedBy.NONE
        ),
    }


def _create(values: dict[str, Any]) -> Any:
    """INSERT of a new job, returning its id, or nothing when the id exists already.

    The id is claimed in ``job_ids`` (``jobs`` is partitioned on ``started_at``, so
    its own key cannot keep ids unique) and the row goes in only if the claim was new;
    one statement, so the first report of a job needs no transaction."""
    claimed = (
        insert(JobId)
        .values(job_id=values["job_id"], user_id=values["user_id"], started_at=values["started_at"])
        .on_conflict_do_nothing(index_elements=["job_id"])
        .returning(JobId.job_id)
        .cte("claimed")
    )
    names = list(values)
    columns = Job.__table__.c
    row = select(*(literal(values[n], columns[n].type) for n in names)).select_from(claimed)
    return (
        insert(Job)
        .from_select(names, row, include_defaults=False)
        .add_cte(claimed)
        .returning(Job.job_id)
    )


def _by_id(job_id: str) -> Any:
    """The job ``job_id``, found in its own month: its ``started_at`` comes from
    ``job_ids`` in an uncorrelated subquery (an InitPlan), so PostgreSQL prunes every
    other month's partition when the statement runs instead of probing them all."""
    month = select(JobId.started_at).where(JobId.job_id == job_id).scalar_subquery()
    return and_(Job.job_id == job_id, Job.started_at == month)


def _array(name: str, item: Any) -> Any:
    return cast(bindparam(name), ARRAY(item))


# The batch travels as one array per column and is unnested into rows: a single
# statement, compiled once, whatever the batch size.
_PENDING = (
    func.unnest(
        _array("job_ids", String),
        _array("device_ids", String),
        _array("counters", BigInteger),
        _array("bytes_done", BigInteger),
        _array("items_done", BigInteger),
        _array("bytes_total", BigInteger),
        _array("items_total", BigInteger),
        _array("current_paths", Text),
        _array("reported_at", DateTime(timezone=True)),
    )
    .table_valued(
        value_column("job_id", String),
        value_column("device_id", String),
        value_column("counter", BigInteger),
        value_column("bytes_done", BigInteger),
        value_column("items_done", BigInteger),
        value_column("bytes_total", BigInteger),
        value_column("items_total", BigInteger),
        value_column("current_path", Text),
        value_column("reported_at", DateTime(timezone=True)),
    )
    .render_derived(name="pending")
)


def _newest_of(stored: Any, offered: Any) -> Any:
    """The offered value where the offered counter is newer, else the stored one."""
    return case((Job.progress_counter < _PENDING.c.counter, offered), else_=stored)


# UPDATE … WHERE counter < new, for a batch of held-back progress updates; only
# running jobs of the reporting device.
_FLUSH = (
    update(Job)
    .where(
        Job.job_id == _PENDING.c.job_id,
        Job.device_id == _PENDING.c.device_id,
        Job.status.in_(RUNNING_STATES),
    )
    .values(
        progress_counter=_newest_of(Job.progress_counter, _PENDING.c.counter),
        progress_bytes_done=_newest_of(Job.progress_bytes_done, _PENDING.c.bytes_done),
        progress_items_done=_newest_of(Job.progress_items_done, _PENDING.c.items_done),
        progress_bytes_total=_newest_of(Job.progress_bytes_total, _PENDING.c.bytes_total),
        progress_items_total=_newest_of(Job.progress_items_total, _PENDING.c.items_total),
        progress_current_path=_newest_of(Job.progress_current_path, _PENDING.c.current_path),
        last_report_at=func.greatest(Job.last_report_at, _PENDING.c.reported_at),
    )
    .returning(Job.job_id)
)


def _flush_parameters(chunk: list[PendingProgress]) -> dict[str, list[object]]:
    return {
        "job_ids": [p.job_id for p in chunk],
        "device_ids": [p.device_id for p in chunk],
        "counters": [_clamp(p.progress.counter) for p in chunk],
        "bytes_done": [_clamp(p.progress.bytes_done) for p in chunk],
        "items_done": [_clamp(p.progress.items_done) for p in chunk],
        "bytes_total": [_clamp(p.progress.bytes_total) for p in chunk],
        "items_total": [_clamp(p.progress.items_total) for p in chunk],
        "current_paths": [p.progress.current_path for p in chunk],
        "reported_at": [p.reported_at for p in chunk],
    }


class JobStore:
    """Job history in PostgreSQL.

    Reports are written before they are acknowledged, except pure progress updates
    of a running job this instance already knows (same status, counters and fields,
    no log lines, not final): those are kept in a ``ProgressBuffer`` and written by
    ``flush_progress`` (the server calls it every second), so a crash loses at most
    that much progress and never a status, counter or log line."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._progress = ProgressBuffer()
        self._known: dict[str, _Known] = {}

    # ------------------------------------------------------------------ reports

    async def report(
        self,
        *,
        user_id: str,
        device_id: str,
        job: JobRecord,
        log: list[LogLine],
        final: bool = False,
    ) -> int:
        """Records a device's report of its job; returns the highest log seq stored.

        Idempotent: keyed by job id; log lines by (job id, seq); progress only when
        its counter is newer. The job must be the reporting device's own
        (PermissionDeniedError otherwise). A pure progress update may be held back
        for up to one flush interval; anything else is durable when this returns,
        including any progress held back for the job."""
        if not job.job_id or len(job.job_id) > 64:
            raise InvalidRequestError("a job report needs a job id of at most 64 characters")
        # A device reports the scheduled runs it missed while it was down (MISSED, under
        # the id the missed-run sweep would give, so each run is one row) and the jobs its
        # own restart cut off (ABANDONED, kept apart from the server's timeout).
        now = self._clock.now()
        known = self._known.get(job.job_id)
        if (
            known is not None
            and not log
            and not final
            and known.takes_progress_only(user_id, device_id, job)
        ):
            self._progress.offer(job.job_id, device_id, job.progress, now)
            return known.last_log_seq
        pending = self._progress.pop(job.job_id)
        try:
            return await self._write(user_id, device_id, job, log, now, pending)
        except BaseException:
            if pending is not None:
                self._progress.restore([pending])
            raise

    async def _write(
        self,
        user_id: str,
        device_id: str,
        job: JobRecord,
        log: list[LogLine],
        now: datetime,
        pending: PendingProgress | None,
    ) -> int:
        progress = _newest(job.progress, pending)
        create = _create(
            {
                "job_id": job.job_id,
                "user_id": user_id,
                "device_id": device_id,
                "started_at": job.started_at or now,
                "ended_at": None if job.status.is_running else (job.ended_at or now),
                "last_report_at": now,
                **_report_values(job, job.status),
                **_progress_values(progress if progress.counter > 0 else JobProgress()),
            }
        )
        if job.job_id not in self._known:
            # Likely the job's first report: one statement, no transaction around it.
            # (Should the server stop before its log lines are in, the report was not
            # acknowledged and the device sends them again.)
            async with self._autocommit.connect() as conn:
                created = await conn.scalar(create)
                if created is not None:
                    await self._add_lines(conn, job.job_id, log, now)
            if created is not None:
                last = max((_clamp(line.seq) for line in log), default=0)
                self._remember(user_id, device_id, job, job.status, last)
                return last
        async with self._engine.begin() as conn:
            created = await conn.scalar(create)  # known, yet gone: its user was deleted
            if created is not None:
                status = job.status
                await self._add_lines(conn, job.job_id, log, now)
                last = max((_clamp(line.seq) for line in log), default=0)
            else:
                status = await self._update(conn, user_id, device_id, job, progress, now)
                await self._add_lines(conn, job.job_id, log, now)
                known = self._known.get(job.job_id)
                if log or known is None:
                    last = await self._last_seq(conn, job.job_id)
                else:
                    last = known.last_log_seq
        self._remember(user_id, device_id, job, status, last)
        return last

    async def _update(
        self,
        conn: AsyncConnection,
        user_id: str,
        device_id: str,
        job: JobRecord,
        progress: JobProgress,
        now: datetime,
    ) -> JobStatus:
        """Applies a report to an existing job (locked here); returns its status."""
        row = (
            await conn.execute(
                select(Job.user_id, Job.device_id, Job.status, Job.ended_at, Job.progress_counter)
                .where(_by_id(job.job_id))
                .with_for_update()
            )
        ).one()
        if row.device_id != device_id or row.user_id != user_id:
            raise PermissionDeniedError(f"job {job.job_id} belongs to another device")
        stored = JobStatus(row.status)
        status = _next_status(stored, job.status)
        if status is JobStatus.RUNNING_REVIVED and stored is JobStatus.ABANDONED:
            await self._server_line(
                conn, job.job_id, now, Severity.WARNING, "the device reported again: job revived"
            )
        if not (status is not stored or stored.is_running or status is job.status):
            return stored  # a late "running" report of an ended job; only its log counts
        values = _report_values(job, status)
        if job.started_at is not None:
            values["started_at"] = job.started_at
        values["ended_at"] = None if status.is_running else (job.ended_at or row.ended_at or now)
        if progress.counter > row.progress_counter:
            values.update(_progress_values(progress))
        values["last_report_at"] = now
        await conn.execute(update(Job).where(_by_id(job.job_id)).values(**values))
        if job.started_at is not None:  # the job may move to another month: follow it
            await conn.execute(
                update(JobId)
                .where(JobId.job_id == job.job_id, JobId.started_at != job.started_at)
                .values(started_at=job.started_at)
            )
        return status

    def _remember(
        self, user_id: str, device_id: str, job: JobRecord, status: JobStatus, last_seq: int
    ) -> None:
        self._known.pop(job.job_id, None)
        if not status.is_running:
            return
        if len(self._known) >= MAX_KNOWN_JOBS:
            del self._known[next(iter(self._known))]
        self._known[job.job_id] = _Known(user_id, device_id, status, _signature(job), last_seq)

    async def flush_progress(self) -> int:
        """Writes the held-back progress updates; returns how many jobs changed.

        Newer counters win against what is stored; jobs no longer running (ended or
        abandoned meanwhile, possibly by another instance) are left alone and
        forgotten, so their next report is written through. If the write fails, the
        updates go back to the buffer for the next round."""
        batch = sorted(self._progress.take(), key=lambda p: p.job_id)
        updated: set[str] = set()
        try:
            for start in range(0, len(batch), FLUSH_CHUNK):
                chunk = batch[start : start + FLUSH_CHUNK]
                async with self._engine.begin() as conn:
                    updated.update(await conn.scalars(_FLUSH, _flush_parameters(chunk)))
        except BaseException:
            self._progress.restore([p for p in batch if p.job_id not in updated])
            raise
        for entry in batch:
            if entry.job_id not in updated:
                self._known.pop(entry.job_id, None)
        return len(updated)

    async def run_progress_flusher(self, every: float) -> None:
        """Flushes held-back progress every ``every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush_progress()
            except Exception as e:  # the database may be briefly away; the next round retries
                if is_database_unavailable(e):
                    logger.info("could not write job progress: the database is unavailable")
                else:
                    logger.exception("could not write job progress")

    async def _last_seq(self, conn: AsyncConnection, job_id: str) -> int:
        last = await conn.scalar(
            select(func.max(JobLogEntry.seq)).where(
                JobLogEntry.job_id == job_id, JobLogEntry.seq >= 0
            )
        )
        return int(last or 0)

    async def _add_lines(
        self, conn: AsyncConnection, job_id: str, log: list[LogLine], now: datetime
    ) -> None:
        if not log:
            return
        await conn.execute(
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
        self,
        conn: AsyncConnection | AsyncSession,
        job_id: str,
        when: datetime,
        severity: Severity,
        message: str,
    ) -> None:
        lowest = await conn.scalar(
            select(func.min(JobLogEntry.seq)).where(JobLogEntry.job_id == job_id)
        )
        seq = min(int(lowest or 0), 0) - 1
        await conn.execute(
            insert(JobLogEntry).values(
                job_id=job_id, seq=seq, time=when, severity=int(severity), message=message
            )
        )

    # ------------------------------------------------------------------ queries

    async def find(self, query: JobQuery) -> JobPage:
        """Newest first, ``page_size`` at a time (default 100, at most 1000)."""
        size = min(query.page_size or DEFAULT_PAGE, MAX_PAGE)
        stmt = _filtered(select(Job, User.username), query).limit(size + 1)
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        token = _encode_token(rows[size - 1][0]) if len(rows) > size else ""
        return JobPage([_record(job, name) for job, name in rows[:size]], token)

    async def export_rows(self, query: JobQuery) -> tuple[list[tuple[Any, ...]], str]:
        """``find``'s jobs (same filters, order and page token) as plain rows of
        ``EXPORT_COLUMNS``, codes as stored: no ORM object or record a job, for the
        CSV export's thousand rows."""
        size = min(query.page_size or DEFAULT_PAGE, MAX_PAGE)
        stmt = _filtered(select(*EXPORT_COLUMNS), query).limit(size + 1)
        async with self._sessions() as s:
            rows = [tuple(r) for r in (await s.execute(stmt)).all()]
        token = _token(rows[size - 1][5], rows[size - 1][0]) if len(rows) > size else ""
        return rows[:size], token

    async def log(self, job_id: str, *, user_id: str = "") -> tuple[JobRecord, list[LogLine]]:
        """A job and its log in time order; with ``user_id``, only that account's job."""
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(Job, User.username)
                    .join(User, User.id == Job.user_id)
                    .where(_by_id(job_id))
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
        with a log line. Safe to run on several instances at once. Held-back progress
        is written first: it is this instance's latest news of its jobs."""
        await self.flush_progress()
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            ids = list(
                await s.scalars(
                    update(Job)
                    .where(
                        Job.status.in_([int(JobStatus.RUNNING), int(JobStatus.RUNNING_REVIVED)]),
                        Job.last_report_at < now - timeout,
                    )
                    .values(
                        status=int(JobStatus.ABANDONED),
                        ended_at=Job.last_report_at,
                        abandoned_by=int(AbandonedBy.SERVER_TIMEOUT),
                    )
                    .returning(Job.job_id)
                )
            )
            minutes = int(timeout.total_seconds() // 60)
            for job_id in ids:
                self._known.pop(job_id, None)
                await self._server_line(
                    s,
                    job_id,
                    now,
                    Severity.ERROR,
                    f"the device stopped reporting for {minutes} minutes: job abandoned",
                )
        return ids

    async def ensure_partitions(self) -> int:
        """Creates the monthly partitions of ``jobs`` for this month and the next
        three; how many were new. Job months are never dropped: there is no job
        retention (only log lines are pruned, by ``prune_logs``)."""
        return await partitions.ensure_ahead(self._engine, "jobs", self._clock.now())

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
                _create(
                    {
                        "job_id": job_id,
                        "user_id": user_id,
                        "device_id": device_id,
                        "item_id": item_id,
                        "vault_id": vault_id,
                        "classification": int(JobClassification.BACKUP),
                        "status": int(JobStatus.MISSED),
                        "started_at": expected,
                        "ended_at": expected,
                        "last_report_at": now,
                    }
                )
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
