"""Ending a job record from outside its work: a job the agent stops waiting for at
shutdown is recorded as Cancelled with the reason, rather than left Running (which
the next start would call Abandoned)."""

from __future__ import annotations

import time
from dataclasses import replace

from comet.agent.cancel import CancelToken
from comet.agent.jobs.codes import Severity, Status
from comet.agent.jobs.record import JobRecord, LogEntry
from comet.agent.jobs.store import JobStore


def record_cancelled(store: JobStore, job: JobRecord, cancel: CancelToken) -> JobRecord:
    """Store ``job`` as Cancelled (7005) now, with a log line giving the reason."""
    message = f"job {cancel.reason}"
    seq = len(store.log(job.job_id)) + 1
    store.append_log(job.job_id, [LogEntry(seq, time.time_ns(), Severity.WARNING, message)])
    ended = replace(job, status=Status.CANCELLED, ended_ns=time.time_ns(), error=message)
    store.save(ended)
    return ended
