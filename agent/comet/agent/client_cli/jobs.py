"""``comet history`` and ``comet job log|cancel``, and how every job-starting command
follows its job to the end (``--wait``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from comet.agent.client_cli.common import AgentClient, CliError
from comet.agent.client_cli.progress import Progress, ProgressLine, on_terminal
from comet.agent.output import print_json, print_table, rfc3339
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


def job_json(job: common_pb2.Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "classification": common_pb2.JobClassification.Name(job.classification)
        .removeprefix("JOB_CLASSIFICATION_")
        .lower(),
        "classification_code": job.classification,
        "status": common_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower(),
        "status_code": job.status,
        "item_id": job.item_id or None,
        "vault_id": job.vault_id or None,
        "device_id": job.device_id,
        "snapshot_id": job.snapshot_id or None,
        "started_at": rfc3339(job.started_at),
        "ended_at": rfc3339(job.ended_at),
        "files": job.counters.files,
        "directories": job.counters.directories,
        "bytes": job.counters.bytes,
        "uploaded_bytes": job.counters.uploaded_bytes,
        "downloaded_bytes": job.counters.downloaded_bytes,
        "error": job.error_message or None,
    }


def is_ok(status: int) -> bool:
    return status in (common_pb2.JOB_STATUS_SUCCESS, common_pb2.JOB_STATUS_WARNING)


def wait_for_job(client: AgentClient, job: common_pb2.Job, *, show: bool) -> common_pb2.Job:
    """Follow the job's events until it ends; with ``show``, its log lines and a
    progress line (rate, ETA) on stderr. Ctrl-C stops following, not the job."""
    last = job
    line = ProgressLine(sys.stderr) if show else None
    try:
        for event in client.api.WatchJobs(agent_api_pb2.WatchJobsRequest(job_id=job.job_id)):
            last = event.job
            if line is not None:
                for entry in event.log:
                    line.message(entry.message)
                p = last.progress
                line.update(
                    Progress(
                        p.bytes_done, p.bytes_total, p.items_done, p.items_total, p.current_path
                    ),
                    force=event.ended,
                )
            if event.ended:
                break
    except KeyboardInterrupt:
        raise CliError(
            f"stopped waiting; job {job.job_id} keeps running in the agent"
            f" ('comet job cancel {job.job_id}' stops it)"
        ) from None
    finally:
        if line is not None:
            line.clear()
    return last


def finish_job(client: AgentClient, job: common_pb2.Job, args: argparse.Namespace) -> None:
    if args.wait:
        job = wait_for_job(client, job, show=on_terminal() and not args.json)
    if args.json:
        print_json(job_json(job))
    else:
        doc = job_json(job)
        print(
            f"job {doc['job_id']}: {doc['status']}"
            + (f", snapshot {doc['snapshot_id']}" if doc["snapshot_id"] else "")
            + (f" ({doc['error']})" if doc["error"] else "")
        )
    if args.wait and not is_ok(job.status):
        raise CliError(
            f"the job ended with status {job_json(job)['status']}"
            + (f": {job.error_message}" if job.error_message else "")
        )


def cmd_history(client: AgentClient, args: argparse.Namespace) -> None:
    from comet.agent.jobs.codes import parse_classification, parse_status

    try:
        statuses = [common_pb2.JobStatus.ValueType(parse_status(s)) for s in args.status or []]
        kinds = [
            common_pb2.JobClassification.ValueType(parse_classification(c))
            for c in args.classification or []
        ]
    except (KeyError, ValueError) as e:
        raise CliError(f"unknown status or classification: {e}") from e
    reply = client.api.History(
        agent_api_pb2.HistoryRequest(
            statuses=statuses,
            classifications=kinds,
            item_id=args.item or "",
            vault_id=args.vault or "",
            device_id=args.device or "",
            all_devices=args.all_devices,
        ),
        timeout=60,
    )
    rows = [job_json(j) for j in reply.jobs]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["job_id", "classification", "status", "started_at", "files", "bytes"])


def cmd_job_cancel(client: AgentClient, args: argparse.Namespace) -> None:
    job = client.api.CancelJob(agent_api_pb2.CancelLocalJobRequest(job_id=args.job_id), timeout=60)
    if args.wait:
        job = wait_for_job(client, job, show=False)
    if args.json:
        print_json(job_json(job))
    else:
        print(f"job {job.job_id}: {job_json(job)['status']}")


def cmd_job_log(client: AgentClient, args: argparse.Namespace) -> None:
    reply = client.api.JobLog(agent_api_pb2.JobLogRequest(job_id=args.job_id), timeout=60)
    severity = {1: "D", 2: "I", 3: "W", 4: "E"}
    if args.json:
        print_json(
            {
                "job": job_json(reply.job),
                "entries": [
                    {
                        "time": rfc3339(e.time),
                        "severity": severity.get(e.severity, "I"),
                        "message": e.message,
                    }
                    for e in reply.entries
                ],
            }
        )
        return
    for e in reply.entries:
        print(f"{rfc3339(e.time)} {severity.get(e.severity, 'I')} {e.message}")


def register(sub: Subcommands) -> None:
    history = sub.add_parser("history", help="job history of this device")
    history.add_argument("--status", action="append")
    history.add_argument("--classification", action="append")
    history.add_argument("--item")
    history.add_argument("--vault")
    history.add_argument("--device")
    history.add_argument("--all-devices", action="store_true")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)
    job = sub.add_parser("job", help="jobs").add_subparsers(dest="sub", required=True)
    jlog = job.add_parser("log", help="show a job's log")
    jlog.add_argument("job_id")
    jlog.add_argument("--json", action="store_true")
    jlog.set_defaults(func=cmd_job_log)
    jcancel = job.add_parser("cancel", help="cancel a running job (it stops within seconds)")
    jcancel.add_argument("job_id")
    jcancel.add_argument("--wait", action="store_true", help="wait until it has stopped")
    jcancel.add_argument("--json", action="store_true")
    jcancel.set_defaults(func=cmd_job_cancel)
