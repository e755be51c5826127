"""A job's record and log entries, as the agent keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field

from comet.agent.jobs.codes import Classification, Severity, Status


@dataclass
class JobCounters:
    files: int = 0
    directories: int = 0
    bytes: int = 0
    uploaded_bytes: int = 0
    downloaded_bytes: int = 0


@dataclass
class JobProgress:
    counter: int = 0
    bytes_done: int = 0
    items_done: int = 0
    bytes_total: int = 0
    items_total: int = 0
    current_path: str = ""


@dataclass
class JobRecord:
    job_id: str
    classification: Classification
    status: Status
    device_id: str
    username: str
    item_id: str = ""
    vault_id: str = ""
    started_ns: int = 0
    ended_ns: int = 0
    snapshot_id: str = ""
    error: str = ""
    client_version: str = ""
    counters: JobCounters = field(default_factory=JobCounters)
    progress: JobProgress = field(default_factory=JobProgress)


@dataclass(frozen=True)
class LogEntry:
    seq: int
    time_ns: int
    severity: Severity
    message: str
    # The line names a file or folder of the user's: when the user does not allow
    # administrators to view their files, the server gets a line without the name.
    about_file: bool = False
