"""``comet delete-snapshot|retention|reindex|verify|unlock|remeasure``: jobs on a whole
vault."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from comet.agent.client_cli.common import AgentClient, CliError, read_password
from comet.agent.client_cli.jobs import finish_job, is_ok, job_json, wait_for_job
from comet.agent.client_cli.progress import on_terminal
from comet.agent.client_cli.snapshot_tools import cmd_retention_dry_run
from comet.agent.output import print_json
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


def vault_job(classification: int) -> Callable[[AgentClient, argparse.Namespace], None]:
    def run(client: AgentClient, args: argparse.Namespace) -> None:
        job = client.api.StartVaultJob(
            agent_api_pb2.StartVaultJobRequest(
                vault_id=args.vault,
                classification=classification,  # type: ignore[arg-type]
                snapshot_ids=getattr(args, "snapshots", None) or [],
                read_data=getattr(args, "read_data", False),
                tags=getattr(args, "tag", None) or [],
                password=read_password() if getattr(args, "password_stdin", False) else "",
            ),
            timeout=60,
        )
        finish_job(client, job, args)

    return run


def cmd_retention(client: AgentClient, args: argparse.Namespace) -> None:
    if args.dry_run:
        cmd_retention_dry_run(client, args)
    else:
        vault_job(common_pb2.JOB_CLASSIFICATION_RETENTION)(client, args)


_REMOVED_LOCK = "removed lock "  # the unlock job's log line per removed lock


def cmd_vault_unlock(client: AgentClient, args: argparse.Namespace) -> None:
    """Remove stale locks, or with --force every lock (after a confirmation on a
    terminal unless --yes); with --wait, list what was removed."""
    if args.force and not args.yes and sys.stdin.isatty():
        answer = input(
            f"Remove EVERY lock of vault {args.vault}? Jobs still running on any device "
            "will stop without committing. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            raise CliError("nothing was removed")
    job = client.api.StartVaultJob(
        agent_api_pb2.StartVaultJobRequest(
            vault_id=args.vault,
            classification=common_pb2.JOB_CLASSIFICATION_UNLOCK,
            remove_all_locks=args.force,
        ),
        timeout=60,
    )
    if args.wait:
        job = wait_for_job(client, job, show=on_terminal() and not args.json)
    doc = job_json(job)
    removed: list[dict[str, str]] = []
    if args.wait:
        log = client.api.JobLog(agent_api_pb2.JobLogRequest(job_id=job.job_id), timeout=60)
        for entry in log.entries:
            if entry.message.startswith(_REMOVED_LOCK):
                key, _, detail = entry.message.removeprefix(_REMOVED_LOCK).partition(" ")
                removed.append({"key": key, "detail": detail})
        doc["removed_locks"] = removed
    if args.json:
        print_json(doc)
    else:
        print(
            f"job {doc['job_id']}: {doc['status']}" + (f" ({doc['error']})" if doc["error"] else "")
        )
        for lock in removed:
            print(f"removed {lock['key']} {lock['detail']}")
    if args.wait and not is_ok(job.status):
        raise CliError(
            f"the job ended with status {doc['status']}"
            + (f": {job.error_message}" if job.error_message else "")
        )


def register(sub: Subcommands) -> None:
    for name, code, text in (
        (
            "delete-snapshot",
            common_pb2.JOB_CLASSIFICATION_DELETE_SNAPSHOT,
            "delete snapshots, then remove data nothing else uses",
        ),
        ("retention", common_pb2.JOB_CLASSIFICATION_RETENTION, "run a retention pass now"),
        ("reindex", common_pb2.JOB_CLASSIFICATION_REINDEX, "rebuild indexes from the packs"),
        ("verify", common_pb2.JOB_CLASSIFICATION_DEEP_VERIFY, "check the vault's integrity"),
        ("unlock", common_pb2.JOB_CLASSIFICATION_UNLOCK, "remove stale locks"),
        ("remeasure", common_pb2.JOB_CLASSIFICATION_REMEASURE, "recompute the vault size"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--vault", required=True)
        if name == "delete-snapshot":
            p.add_argument("snapshots", nargs="+", metavar="SNAPSHOT")
        if name in ("delete-snapshot", "retention"):
            p.add_argument(
                "--password-stdin",
                action="store_true",
                help="immutable Comet Server vault: re-enter your password so the server"
                " grants deletes (of data past its protection only)",
            )
        if name == "retention":
            p.add_argument(
                "--dry-run",
                action="store_true",
                help="list what would be forgotten and which rule keeps each kept snapshot",
            )
            p.add_argument(
                "--tag", action="append", default=[], help="judge only snapshots with this tag"
            )
        if name == "verify":
            p.add_argument(
                "--read-data", action="store_true", help="download, decrypt and hash every blob"
            )
        p.add_argument("--wait", action="store_true")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=vault_job(code))
        if name == "retention":
            p.set_defaults(func=cmd_retention)
        if name == "unlock":
            p.add_argument(
                "--force",
                action="store_true",
                help="remove every lock, also those of running jobs (they then stop)",
            )
            p.add_argument("--yes", action="store_true", help="do not ask to confirm --force")
            p.set_defaults(func=cmd_vault_unlock)
