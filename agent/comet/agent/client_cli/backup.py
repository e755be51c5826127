"""``comet backup``: back up a Protected Item now."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from comet.agent.client_cli.common import AgentClient
from comet.agent.client_cli.jobs import finish_job
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


def cmd_backup(client: AgentClient, args: argparse.Namespace) -> None:
    options = common_pb2.BackupOptions(
        bandwidth_limit_bps=args.bandwidth_limit or 0,
        stop_after_seconds=args.stop_after or 0,
        tags=args.tag,
    )
    job = client.api.StartBackup(
        agent_api_pb2.StartBackupRequest(item_id=args.item, vault_id=args.vault, options=options),
        timeout=60,
    )
    finish_job(client, job, args)


def register(sub: Subcommands) -> None:
    backup = sub.add_parser("backup", help="back up a Protected Item now")
    backup.add_argument("item", help="item id or name")
    backup.add_argument("--vault", required=True, help="vault id or name")
    backup.add_argument("--wait", action="store_true", help="wait for the job to end")
    backup.add_argument(
        "--bandwidth-limit", type=int, metavar="BYTES_PER_S", help="cap upload speed for this job"
    )
    backup.add_argument(
        "--stop-after", type=int, metavar="SECONDS", help="cancel the job after this long"
    )
    backup.add_argument(
        "--tag", action="append", default=[], help="store this tag in the snapshot (repeatable)"
    )
    backup.add_argument("--json", action="store_true")
    backup.set_defaults(func=cmd_backup)
