"""``comet``: the command-line client of the local agent.

One module per command group; each has ``register(sub)`` adding its subcommands, whose
handlers take ``(client, args)``. A new group is a new module plus one line in
``GROUPS``. Errors reach the person as one sentence (``comet: error: …``) from
:func:`main`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from comet.agent.cli_totp import add_totp_commands
from comet.agent.client_cli import (
    account,
    backup,
    browse,
    imports,
    items,
    jobs,
    maintenance,
    restore,
    schedules,
    snapshot_tools,
    vaults,
)
from comet.agent.client_cli.account import status_json
from comet.agent.client_cli.browse import entry_json, size_arg, snapshot_json
from comet.agent.client_cli.common import PROG, AgentClient, CliError, OneLineParser
from comet.agent.client_cli.items import item_json
from comet.agent.client_cli.jobs import finish_job, job_json, wait_for_job
from comet.agent.client_cli.schedules import schedule_json
from comet.agent.client_cli.vaults import vault_json
from comet.agent.config import default_socket_path
from comet.agent.errors import AgentError, os_error_sentence
from comet.agent.mount_commands import add_mount_commands
from comet.agent.output import fail, stdout_reader_gone

__all__ = [
    "GROUPS",
    "PROG",
    "AgentClient",
    "CliError",
    "build_parser",
    "entry_json",
    "finish_job",
    "item_json",
    "job_json",
    "main",
    "schedule_json",
    "size_arg",
    "snapshot_json",
    "status_json",
    "vault_json",
    "wait_for_job",
]

# The command groups, in the order ``comet --help`` lists them.
GROUPS: tuple[Callable[[Any], None], ...] = (
    account.register,
    vaults.register,
    items.register,
    schedules.register,
    backup.register,
    browse.register,
    snapshot_tools.register,
    restore.register,
    jobs.register,
    maintenance.register,
    imports.register,
    add_mount_commands,
    add_totp_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Control the local Comet agent.")
    parser.add_argument("--socket", type=Path, default=None, help="the agent's unix socket")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in GROUPS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        precheck = getattr(args, "precheck", None)
        if precheck is not None:  # refusals that need no agent come first
            precheck(args)
        client = AgentClient(args.socket or default_socket_path())
        try:
            args.func(client, args)
        except grpc.RpcError as e:
            return fail(PROG, client.failure(e))
        sys.stdout.flush()  # a reader that went away is noticed here, not at exit
    except BrokenPipeError:
        return stdout_reader_gone()
    except KeyboardInterrupt:  # Ctrl-C: no traceback; jobs already started keep running
        return 130
    except (CliError, AgentError) as e:
        return fail(PROG, str(e))
    except OSError as e:
        return fail(PROG, os_error_sentence(e))
    return 0
