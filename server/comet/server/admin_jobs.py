"""``comet-admin jobs`` and ``comet-admin job log``: job history across accounts."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from comet.agent.output import print_json, print_table, rfc3339
from comet.server.admin_names import AdminNames
from comet.server.admin_session import Admin, AdminCliError, load_session
from comet.v1 import admin_pb2, common_pb2, control_pb2

PAGE = 500


def _code(value: str, enum: Any, prefix: str, what: str) -> int:
    """An enum value from a name (``success``, ``running-revived``) or a code (5000)."""
    text = value.strip()
    known: list[str] = [n for n in enum.keys() if not n.endswith("UNSPECIFIED")]  # noqa: SIM118
    if text.isdigit():
        code = int(text)
        if code in enum.values() and code != 0:
            return code
    else:
        name = prefix + text.upper().replace("-", "_")
        if name in known:
            return int(enum.Value(name))
    names = ", ".join(n.removeprefix(prefix).lower() for n in known)
    raise AdminCliError(f"unknown {what} {value!r}; use a code or one of: {names}")


def status_code(value: str) -> int:
    return _code(value, common_pb2.JobStatus, "JOB_STATUS_", "status")


def classification_code(value: str) -> int:
    return _code(value, common_pb2.JobClassification, "JOB_CLASSIFICATION_", "classification")


def _name(enum: Any, prefix: str, code: int) -> str:
    try:
        return str(enum.Name(code)).removeprefix(prefix).lower()
    except ValueError:
        return str(code)


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """RFC 3339 (``2026-01-05T09:00:00Z``), a date, or an age like ``90m``, ``24h``, ``7d``."""
    match = re.fullmatch(r"(\d+)([smhdw])", value.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
        delta = timedelta(**{unit[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise AdminCliError(
            f"not a time: {value!r} (use RFC 3339, a date, or an age like 24h or 7d)"
        ) from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def job_json(job: common_pb2.Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "user": job.username,
        "device_id": job.device_id,
        "classification": _name(
            common_pb2.JobClassification, "JOB_CLASSIFICATION_", job.classification
        ),
        "classification_code": job.classification,
        "status": _name(common_pb2.JobStatus, "JOB_STATUS_", job.status),
        "status_code": job.status,
        "item_id": job.item_id,
        "vault_id": job.vault_id,
        "snapshot_id": job.snapshot_id,
        "started_at": rfc3339(job.started_at),
        "ended_at": rfc3339(job.ended_at),
        "files": job.counters.files,
        "directories": job.counters.directories,
        "bytes": job.counters.bytes,
        "uploaded_bytes": job.counters.uploaded_bytes,
        "downloaded_bytes": job.counters.downloaded_bytes,
        "client_version": job.client_version,
        "error_message": job.error_message,
        "error": job.error_message or None,  # the name 'comet' uses
        # For abandoned jobs: "server_timeout" or "agent_restart"; else null.
        "abandoned_by": _name(common_pb2.AbandonedBy, "ABANDONED_BY_", job.abandoned_by)
        if job.abandoned_by
        else None,
    }


def cmd_jobs(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    names = AdminNames(admin)
    user = args.user or ""
    query = control_pb2.JobFilter(
        username=user,
        device_id=names.device_id(args.device or "", user=user),
        item_id=names.item_id(args.item or "", user=user),
        vault_id=names.vault_id(args.vault or "", user=user),
        statuses=[status_code(s) for s in args.status],  # type: ignore[misc]
        classifications=[classification_code(c) for c in args.classification],  # type: ignore[misc]
        page_size=min(args.limit, PAGE) if args.limit else PAGE,
    )
    if args.since:
        query.since.CopyFrom(_timestamp(parse_time(args.since)))
    if args.until:
        query.until.CopyFrom(_timestamp(parse_time(args.until)))
    jobs: list[common_pb2.Job] = []
    while True:
        reply = admin.stub.ListJobs(query, metadata=admin.metadata, timeout=60)
        jobs.extend(reply.jobs)
        if not reply.next_page_token or (args.limit and len(jobs) >= args.limit):
            break
        query.page_token = reply.next_page_token
    rows = [job_json(j) for j in jobs[: args.limit or None]]
    if args.json:
        print_json(rows)
    else:
        print_table(
            rows,
            ["job_id", "user", "classification", "status", "started_at", "files", "bytes"],
        )


_SEVERITY = {0: "I", 1: "D", 2: "I", 3: "W", 4: "E"}


def cmd_job_log(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.GetJobLog(
        admin_pb2.GetJobLogRequest(job_id=args.job_id), metadata=admin.metadata, timeout=60
    )
    entries = [
        {
            "seq": e.seq,
            "time": rfc3339(e.time),
            "severity": _SEVERITY.get(e.severity, "I"),
            "message": e.message,
        }
        for e in reply.entries
    ]
    if args.json:
        print_json(entries)
        return
    for e in entries:
        print(f"{e['time']} {e['severity']} {e['message']}")


def add_parsers(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--user")
    jobs.add_argument("--device")
    jobs.add_argument("--item")
    jobs.add_argument("--vault")
    jobs.add_argument(
        "--status", action="append", default=[], help="e.g. success, error, running, or 7002"
    )
    jobs.add_argument(
        "--classification", action="append", default=[], help="e.g. backup, restore, or 4001"
    )
    jobs.add_argument("--since", help="RFC 3339 time, date, or age like 24h / 7d")
    jobs.add_argument("--until", help="RFC 3339 time, date, or age like 1h")
    jobs.add_argument("--limit", type=int, default=0, help="at most this many (0 = all)")
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(func=cmd_jobs)

    job = sub.add_parser("job", help="one job").add_subparsers(dest="sub", required=True)
    log = job.add_parser("log", help="show a job's log")
    log.add_argument("job_id")
    log.add_argument("--json", action="store_true")
    log.set_defaults(func=cmd_job_log)
