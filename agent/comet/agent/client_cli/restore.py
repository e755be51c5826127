"""``comet restore``: a snapshot to a directory, its original paths, an archive file
or a program."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from comet.agent.client_cli.common import AgentClient, CliError
from comet.agent.client_cli.jobs import finish_job
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


ARCHIVES = {"tar": 0, "tar.gz": 1, "zip": 2, "sqfs": 3, "tar.zst": 4}


def restore_options(args: argparse.Namespace) -> common_pb2.RestoreOptions:
    """The one destination the parser allowed, with the options that fit it."""
    options = common_pb2.RestoreOptions(
        paths=args.path or [],
        allow_partial=args.allow_partial,
        restore_privileged=args.restore_privileged,
    )
    if (args.per_file or args.as_archive) and not args.program:
        raise CliError("--per-file and --as-archive go with --program CMD")
    if args.output and not args.archive:
        raise CliError("--output goes with --archive FORMAT")
    writes_files = bool(args.to or args.original_paths)
    if args.overwrite_if_newer and not writes_files:
        raise CliError("--overwrite-if-newer goes with --to DIR or --original-paths")
    if args.overwrite and not (writes_files or args.archive):
        raise CliError("--overwrite goes with --to DIR, --original-paths or --archive")
    if args.overwrite:
        options.overwrite = common_pb2.OVERWRITE_MODE_OVERWRITE
    elif args.overwrite_if_newer:
        options.overwrite = common_pb2.OVERWRITE_MODE_IF_NEWER
    if writes_files:
        options.type = common_pb2.RESTORE_TYPE_FILES
        options.destination = str(Path(args.to).absolute()) if args.to else ""
        options.original_paths = args.original_paths
    elif args.simulate:
        options.type = common_pb2.RESTORE_TYPE_SIMULATE
    elif args.program:
        options.type = (
            common_pb2.RESTORE_TYPE_PROGRAM_ARCHIVE
            if args.as_archive
            else common_pb2.RESTORE_TYPE_PROGRAM_PER_FILE
        )
        options.program_command = args.program
    else:
        if not args.output:
            raise CliError("--archive needs --output FILE")
        options.type = common_pb2.RESTORE_TYPE_ARCHIVE_FILE
        options.archive_format = ARCHIVES[args.archive]  # type: ignore[assignment]
        options.destination = str(Path(args.output).absolute())
    return options


def cmd_restore(client: AgentClient, args: argparse.Namespace) -> None:
    options = restore_options(args)
    job = client.api.StartRestore(
        agent_api_pb2.StartRestoreRequest(
            vault_id=args.vault, snapshot_id=args.snapshot, item_id=args.item or "", options=options
        ),
        timeout=120,
    )
    finish_job(client, job, args)


def register(sub: Subcommands) -> None:
    restore = sub.add_parser("restore", help="restore a snapshot")
    restore.add_argument("snapshot", help="snapshot id (or prefix), or 'latest' with --item")
    restore.add_argument("--vault", required=True)
    restore.add_argument("--item")
    # Exactly one destination: a second one is refused here, before any job starts.
    where = restore.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", help="restore under this directory")
    where.add_argument("--original-paths", action="store_true")
    where.add_argument("--simulate", action="store_true", help="read and verify, write nothing")
    where.add_argument("--program", help="command receiving the data on stdin")
    where.add_argument("--archive", choices=sorted(ARCHIVES), help="write one archive file")
    shape = restore.add_mutually_exclusive_group()
    shape.add_argument("--per-file", action="store_true", help="run the program per file")
    shape.add_argument("--as-archive", action="store_true", help="one tar stream on stdin")
    restore.add_argument("--output", help="archive file to write")
    restore.add_argument(
        "--restore-privileged",
        action="store_true",
        help="also restore setuid/setgid bits, security.* attributes and device nodes",
    )
    restore.add_argument("--path", action="append", help="restore only this path (repeatable)")
    mode = restore.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true")
    mode.add_argument("--overwrite-if-newer", action="store_true")
    mode.add_argument("--skip-existing", action="store_true", help="the default")
    restore.add_argument("--allow-partial", action="store_true")
    restore.add_argument("--wait", action="store_true")
    restore.add_argument("--json", action="store_true")
    restore.set_defaults(func=cmd_restore, precheck=restore_options)
