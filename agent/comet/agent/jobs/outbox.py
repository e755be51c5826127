"""Ships job records and log lines to the server from the durable outbox (the job
store's ``dirty`` marks), so a server outage or an agent crash loses no history.
Reports are idempotent on the server, so sending one twice is harmless.

No record can hold up the others. Every refusal is classified (``refusal_kind``):
the server being away stops the round and the next one waits a capped, jittered
back-off (reset by a success or a ``poke``); a refusal of one record for good is
kept on the record with its reason (``comet status`` shows it) and the round goes
on; a failure that may pass is retried for that record alone, with its own
back-off, and becomes a refusal after ``MAX_RECORD_ATTEMPTS``."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import grpc

from comet.agent.backoff import Backoff
from comet.agent.convert import job_to_proto, log_to_proto
from comet.agent.jobs.record import JobRecord, LogEntry
from comet.agent.jobs.store import JobStore
from comet.agent.state import AgentState
from comet.agent.transport import aio_channel, rpc_error_message
from comet.v1 import control_pb2, control_pb2_grpc

log = logging.getLogger(__name__)

MAX_RECORD_ATTEMPTS = 8
OUTBOX_BACKOFF = Backoff(first=1.0, cap=5.0)
LOG_LINES_PER_REPORT = 500


class Refusal(enum.Enum):
    SERVER_AWAY = "server_away"  # nothing can be sent now: stop the round, back off
    RETRY_RECORD = "retry_record"  # this record failed, the next may not: retry it later
    PERMANENT = "permanent"  # the server will never take this state of the record


_SERVER_AWAY = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    # The device's credential is refused: every record would be; keep them all.
    grpc.StatusCode.UNAUTHENTICATED,
}
_RETRY_RECORD = {
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DATA_LOSS,
}


def refusal_kind(code: grpc.StatusCode) -> Refusal:
    if code in _SERVER_AWAY:
        return Refusal.SERVER_AWAY
    if code in _RETRY_RECORD:
        return Refusal.RETRY_RECORD
    # INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND, FAILED_PRECONDITION, …
    return Refusal.PERMANENT


HIDDEN_FILE_LINE = (
    "a line about one of the user's files or folders; its name is hidden because the "
    "user does not allow administrators to view their files (the device's own job log "
    "has the whole line)"
)


def as_shipped(job: JobRecord, hide_file_names: bool) -> JobRecord:
    """The record the server gets: without the file being worked on when the user does
    not allow administrators to view their files."""
    if not hide_file_names or not job.progress.current_path:
        return job
    return replace(job, progress=replace(job.progress, current_path=""))


def line_as_shipped(entry: LogEntry, hide_file_names: bool) -> LogEntry:
    """The log line the server gets: a line naming a file keeps its time and severity
    but not its text when the user does not allow administrators to view their files.
    The whole line stays in the device's own store."""
    if not hide_file_names or not entry.about_file:
        return entry
    return replace(entry, message=HIDDEN_FILE_LINE)


@dataclass
class _Deferred:
    attempts: int
    due: float  # monotonic


class Outbox:
    def __init__(
        self,
        store: JobStore,
        state: AgentState,
        *,
        interval: float = 1.0,
        backoff: Backoff = OUTBOX_BACKOFF,
        monotonic: Callable[[], float] = time.monotonic,
        hide_file_names: Callable[[], bool] = lambda: False,
    ) -> None:
        self._store = store
        self._hide_file_names = hide_file_names
        self._state = state
        self._interval = interval
        self._backoff = backoff
        self._monotonic = monotonic
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deferred: dict[str, _Deferred] = {}
        self._failures = 0  # rounds in a row that found the server away
        self._error = ""
        self._retry_error = ""

    @property
    def last_error(self) -> str:
        """The current reason records are not reaching the server, else the newest
        refusal that is still on record; empty when all is well."""
        if self._error:
            return self._error
        rejection = self._store.latest_rejection()
        if rejection is None:
            return ""
        job_id, reason = rejection
        return f"the server refused the record of job {job_id}: {reason}"

    def counts(self) -> tuple[int, int]:
        """(records waiting to be sent, records the server refused)."""
        return self._store.outbox_counts()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def poke(self) -> None:
        """Send now (e.g. the server is reachable again), whatever the back-off."""
        self._failures = 0
        for deferred in self._deferred.values():
            deferred.due = 0.0
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def flush(self) -> bool:
        """Send everything that is due once; True when nothing is left to send."""
        login = self._state.load_login()
        if not login.logged_in:
            return False
        channel = aio_channel(login.server)
        stub = control_pb2_grpc.AgentServiceStub(channel)
        metadata = (("authorization", f"Bearer {login.device_token}"),)
        try:
            while True:
                now = self._monotonic()
                waiting = [j for j, d in self._deferred.items() if d.due > now]
                pending = self._store.dirty(skip=waiting)
                if not pending:
                    break
                hide = self._hide_file_names()
                for job, sent_seq in pending:
                    if job.device_id != login.device_id:
                        # Recorded under an earlier login of this machine: it belongs
                        # to that device, which this credential may not report for.
                        self._store.mark_sent(job, sent_seq)
                        continue
                    entries = self._store.log(job.job_id, after_seq=sent_seq)
                    entries = entries[:LOG_LINES_PER_REPORT]
                    try:
                        await stub.ReportJob(
                            control_pb2.JobReport(
                                job=job_to_proto(as_shipped(job, hide)),
                                log=[log_to_proto(line_as_shipped(e, hide)) for e in entries],
                                final=bool(job.ended_ns) and not job.status.running,
                            ),
                            metadata=metadata,
                            timeout=30,
                        )
                    except grpc.aio.AioRpcError as e:
                        if self._refused(job.job_id, e) is Refusal.SERVER_AWAY:
                            self._failures += 1
                            return False
                        continue
                    self._deferred.pop(job.job_id, None)
                    self._store.mark_sent(job, entries[-1].seq if entries else sent_seq)
        finally:
            await channel.close()
        self._failures = 0
        self._error = self._retry_error if self._deferred else ""
        return not self._deferred

    def _refused(self, job_id: str, error: grpc.aio.AioRpcError) -> Refusal:
        reason = rpc_error_message(error)
        kind = refusal_kind(error.code())
        if kind is Refusal.SERVER_AWAY:
            if self._error != reason:
                log.info("job records wait for the server: %s", reason)
            self._error = reason
            return kind
        if kind is Refusal.RETRY_RECORD:
            deferred = self._deferred.get(job_id) or _Deferred(0, 0.0)
            deferred.attempts += 1
            if deferred.attempts < MAX_RECORD_ATTEMPTS:
                deferred.due = self._monotonic() + self._backoff.delay(deferred.attempts)
                self._deferred[job_id] = deferred
                self._retry_error = f"the server failed on the record of job {job_id}: {reason}"
                log.info(
                    "the server failed on the record of job %s (attempt %d, retried later): %s",
                    job_id,
                    deferred.attempts,
                    reason,
                )
                return kind
            reason = f"{reason} (after {deferred.attempts} attempts)"
        self._deferred.pop(job_id, None)
        self._store.reject(job_id, reason)
        log.warning(
            "the server refused the record of job %s; kept on this device: %s", job_id, reason
        )
        return Refusal.PERMANENT

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # keep shipping later; the records are safe on disk
                log.exception("job outbox")
                self._failures += 1
            wait = self._backoff.delay(self._failures) if self._failures else self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
