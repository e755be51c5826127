"""``comet import``: settings from other backup products."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from comet.agent.cli_import import cmd_import_preview
from comet.agent.client_cli.common import AgentClient
from comet.agent.client_cli.jobs import finish_job
from comet.agent.output import print_json, print_table
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


def cmd_import(client: AgentClient, args: argparse.Namespace) -> None:
    if args.list or not args.source_id:
        reply = client.api.ListImportSources(agent_api_pb2.ListImportSourcesRequest(), timeout=60)
        rows = [
            {
                "source_id": s.source_id,
                "product": s.product,
                "path": s.path or None,
                "description": s.description,
            }
            for s in reply.sources
        ]
        if args.json:
            print_json(rows)
        else:
            print_table(rows, ["source_id", "product", "description"])
        return
    if args.dry_run:
        cmd_import_preview(client, args)
        return
    job = client.api.StartVaultJob(
        agent_api_pb2.StartVaultJobRequest(
            classification=common_pb2.JOB_CLASSIFICATION_IMPORT,
            import_source_id=args.source_id,
        ),
        timeout=60,
    )
    args.wait = True
    finish_job(client, job, args)


def register(sub: Subcommands) -> None:
    imp = sub.add_parser("import", help="import settings from other backup products")
    imp.add_argument("source_id", nargs="?", help="a source from --list")
    imp.add_argument("--list", action="store_true", help="list what can be imported")
    imp.add_argument(
        "--dry-run", action="store_true", help="print what would be created; change nothing"
    )
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)
