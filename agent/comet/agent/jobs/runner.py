"""Runs jobs on worker threads (the engine is synchronous) and keeps their records.

Every change is written to the job store first, then published to subscribers (the
local API's event stream). Jobs on one vault run one at a time; the others wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from comet.agent import __version__
from comet.agent.cancel import CancelToken
from comet.agent.errors import AgentError, CancelledError, os_error_sentence
from comet.agent.jobs.codes import Classification, Severity, Status
from comet.agent.jobs.ending import record_cancelled
from comet.agent.jobs.record import JobRecord, LogEntry
from comet.agent.jobs.store import JobStore
from comet.agent.memory import release_free_memory
from comet.agent.printable import printable

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.25  # seconds between stored/published progress updates
SHUTDOWN_WAIT = 6.0  # seconds a shutdown waits for cancelled jobs to end


class QuotaExceededError(AgentError):
    code = "quota_exceeded"


@dataclass(frozen=True)
class JobOutcome:
    status: Status = Status.SUCCESS
    snapshot_id: str = ""
    error: str = ""


@dataclass(frozen=True)
class JobEvent:
    job: JobRecord
    log: tuple[LogEntry, ...] = ()
    ended: bool = False


class JobHandle:
    """What a job's work sees while it runs on a worker thread: its record, a log, a
    progress sink and its cancel token. Thread-safe."""

    def __init__(self, runner: JobRunner, job: JobRecord) -> None:
        self._runner = runner
        self.job = job
        self.cancel = CancelToken()
        self._lock = threading.Lock()
        self._seq = 0
        self._last_progress = 0.0
        self.warnings = 0

    def log(self, severity: Severity, message: str, *, about_file: bool = False) -> None:
        with self._lock:
            self._seq += 1
            entry = LogEntry(self._seq, time.time_ns(), severity, printable(message), about_file)
            if severity is Severity.WARNING:
                self.warnings += 1
        self._runner._store.append_log(self.job.job_id, [entry])
        self._runner._publish_threadsafe(JobEvent(self.snapshot(), (entry,)))

    def info(self, message: str) -> None:
        self.log(Severity.INFO, message)

    def warning(self, message: str, *, about_file: bool = False) -> None:
        self.log(Severity.WARNING, message, about_file=about_file)

    def update(self, *, force: bool = False, **progress: int | str) -> None:
        """Record progress (``bytes_done``, ``items_done``, ``current_path``…), storing
        and publishing it at most every PROGRESS_INTERVAL unless forced."""
        with self._lock:
            for key, value in progress.items():
                setattr(
                    self.job.progress, key, printable(value) if isinstance(value, str) else value
                )
            now = time.monotonic()
            if not force and now - self._last_progress < PROGRESS_INTERVAL:
                return
            self._last_progress = now
            self.job.progress.counter += 1
        self._runner._store.save(self.snapshot())
        self._runner._publish_threadsafe(JobEvent(self.snapshot()))

    def snapshot(self) -> JobRecord:
        with self._lock:
            return replace(
                self.job,
                counters=replace(self.job.counters),
                progress=replace(self.job.progress),
            )


class FileCounts:
    """Files and bytes an engine reports one at a time (a file started, so many bytes
    moved), passed on to the job at most every ``REPORT_EVERY`` seconds: the job stores
    and publishes progress less often still, and a job's end sets its exact counts, so a
    run over many small files doesn't pay a locked update per file."""

    REPORT_EVERY = 0.05  # seconds

    def __init__(self, handle: JobHandle) -> None:
        self._handle = handle
        self.files = 0
        self.bytes = 0
        self._path = ""  # shown as the job's current path
        self._next = 0.0

    def file(self, path: str, size: int = 0) -> None:
        """One more file (``size`` bytes of it already counted as done)."""
        self.files += 1
        self.bytes += size
        self._path = path
        self._report()

    def add_bytes(self, count: int) -> None:
        self.bytes += count
        self._report()

    def _report(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.REPORT_EVERY
            self._handle.update(
                items_done=self.files, bytes_done=self.bytes, current_path=self._path
            )


Work = Callable[[JobHandle], JobOutcome]


@dataclass
class _Running:
    handle: JobHandle
    done: asyncio.Event = field(default_factory=asyncio.Event)


class JobRunner:
    def __init__(self, store: JobStore, identity: Callable[[], tuple[str, str]]) -> None:
        """``identity`` gives the (device_id, username) jobs are recorded under."""
        self._store = store
        self._identity = identity
        self._running: dict[str, _Running] = {}
        self._vault_locks: dict[str, asyncio.Lock] = {}
        self._subscribers: set[asyncio.Queue[JobEvent]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    def recover_interrupted(self) -> list[JobRecord]:
        """Jobs the store still shows running were cut off by a crash of the agent:
        mark them Abandoned, with a log line saying so."""
        recovered = []
        for job in self._store.running():
            seq = len(self._store.log(job.job_id)) + 1
            self._store.append_log(
                job.job_id,
                [
                    LogEntry(
                        seq,
                        time.time_ns(),
                        Severity.ERROR,
                        "the agent stopped while this job was running",
                    )
                ],
            )
            job.status = Status.ABANDONED
            job.ended_ns = time.time_ns()
            job.error = "the agent stopped while this job was running"
            self._store.save(job)
            recovered.append(job)
        return recovered

    async def shutdown(self, timeout: float = SHUTDOWN_WAIT) -> None:
        """Cancel running jobs and wait briefly for them; a job still running after
        ``timeout`` seconds is recorded as Cancelled anyway (its thread dies with the
        process), so the agent stops within seconds."""
        for running in list(self._running.values()):
            running.handle.cancel.cancel("stopped because the agent is shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(r.done.wait() for r in list(self._running.values()))), timeout
            )
        for running in list(self._running.values()):
            record_cancelled(self._store, running.handle.snapshot(), running.handle.cancel)

    # ------------------------------------------------------------ jobs

    def start(
        self,
        classification: Classification,
        work: Work,
        *,
        item_id: str = "",
        vault_id: str = "",
        skip_if_running: bool = False,
        stop_after_seconds: float = 0,
    ) -> JobRecord:
        self._loop = asyncio.get_running_loop()
        device_id, username = self._identity()
        job = JobRecord(
            job_id=str(uuid.uuid4()),
            classification=classification,
            status=Status.RUNNING,
            device_id=device_id,
            username=username,
            item_id=item_id,
            vault_id=vault_id,
            started_ns=time.time_ns(),
            client_version=__version__,
        )
        if skip_if_running and any(
            r.handle.job.item_id == item_id
            and r.handle.job.vault_id == vault_id
            and r.handle.job.classification == classification
            for r in self._running.values()
        ):
            job.status, job.ended_ns = Status.SKIPPED, time.time_ns()
            self._store.save(job)
            self._store.append_log(
                job.job_id,
                [
                    LogEntry(
                        1,
                        time.time_ns(),
                        Severity.WARNING,
                        "skipped: the same job is already running",
                    )
                ],
            )
            self._publish(JobEvent(job, ended=True))
            return job
        self._store.save(job)
        handle = JobHandle(self, job)
        running = _Running(handle)
        self._running[job.job_id] = running
        task = asyncio.create_task(self._run(running, work, stop_after_seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._publish(JobEvent(handle.snapshot()))
        return handle.snapshot()

    def cancel(self, job_id: str, reason: str = "cancelled by a person") -> bool:
        running = self._running.get(job_id)
        if running is None:
            return False
        running.handle.cancel.cancel(reason)
        return True

    async def wait(self, job_id: str) -> JobRecord | None:
        running = self._running.get(job_id)
        if running is not None:
            await running.done.wait()
        return self._store.get(job_id)

    def running_ids(self) -> list[str]:
        return list(self._running)

    def get(self, job_id: str) -> JobRecord | None:
        running = self._running.get(job_id)
        return running.handle.snapshot() if running else self._store.get(job_id)

    async def _run(self, running: _Running, work: Work, stop_after: float) -> None:
        handle = running.handle
        timer = None
        if stop_after > 0:
            timer = asyncio.get_running_loop().call_later(
                stop_after, handle.cancel.cancel, f"stopped after the {stop_after:.0f} s limit"
            )
        lock = self._vault_locks.setdefault(
            handle.job.vault_id or handle.job.job_id, asyncio.Lock()
        )
        try:
            if lock.locked():
                handle.info("waiting for another job on this Storage Vault to finish")
            async with lock:
                outcome = await asyncio.to_thread(self._execute, handle, work)
        finally:
            if timer is not None:
                timer.cancel()
        with handle._lock:
            handle.job.status = outcome.status
            handle.job.snapshot_id = outcome.snapshot_id or handle.job.snapshot_id
            handle.job.error = printable(outcome.error)
            handle.job.ended_ns = time.time_ns()
        self._store.save(handle.snapshot())
        del self._running[handle.job.job_id]
        running.done.set()
        self._publish(JobEvent(handle.snapshot(), ended=True))
        if not self._running:
            release_free_memory()  # the agent is idle again: drop what the jobs freed

    @staticmethod
    def _execute(handle: JobHandle, work: Work) -> JobOutcome:
        try:
            handle.cancel.check()
            outcome = work(handle)
        except CancelledError as e:
            handle.warning(str(e))
            return JobOutcome(Status.CANCELLED, error=str(e))
        except AgentError as e:
            if handle.cancel.cancelled:
                # Stopping a program or a transfer makes it fail: the failure is the cancel.
                message = f"job {handle.cancel.reason} ({e})"
                handle.warning(message)
                return JobOutcome(Status.CANCELLED, error=message)
            handle.log(Severity.ERROR, str(e))
            if isinstance(e, QuotaExceededError):
                return JobOutcome(Status.QUOTA_EXCEEDED, error=str(e))
            return JobOutcome(Status.ERROR, error=str(e))
        except OSError as e:  # a path, permission or disk problem a person can fix
            log.info("job %s: %s", handle.job.job_id, e, exc_info=True)
            message = os_error_sentence(e)
            handle.log(Severity.ERROR, message)
            return JobOutcome(Status.ERROR, error=message)
        except Exception as e:  # a bug: record it on the job, keep the agent alive
            log.exception("job %s failed unexpectedly", handle.job.job_id)
            handle.log(Severity.ERROR, f"internal error: {e!r}")
            return JobOutcome(Status.ERROR, error=f"internal error: {e!r}")
        if outcome.status is Status.SUCCESS and handle.warnings:
            outcome = replace(outcome, status=Status.WARNING)
        return outcome

    # ------------------------------------------------------------ events

    def subscribe(self) -> asyncio.Queue[JobEvent]:
        queue: asyncio.Queue[JobEvent] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[JobEvent]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, event: JobEvent) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a stuck reader loses events
                queue.put_nowait(event)

    def _publish_threadsafe(self, event: JobEvent) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._publish, event)
