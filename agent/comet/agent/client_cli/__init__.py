"""``comet``: the command-line client of the local agent.

One module per command group; each has ``register(sub)`` adding its subcommands, whose
handlers take ``(client, args)``. A new group is a new module plus one line in
``GROUPS`` naming the commands it adds (a command imports its own group only). Errors
reach the person as one sentence (``comet: error: …``) from :func:`main`."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from comet.agent.client_cli.common import PROG, AgentClient, CliError, OneLineParser
from comet.agent.config import default_socket_path
from comet.agent.errors import AgentError, os_error_sentence
from comet.agent.output import fail, stdout_reader_gone

if TYPE_CHECKING:
    from comet.agent.client_cli.account import status_json
    from comet.agent.client_cli.browse import entry_json, size_arg, snapshot_json
    from comet.agent.client_cli.items import item_json
    from comet.agent.client_cli.jobs import finish_job, job_json, wait_for_job
    from comet.agent.client_cli.schedules import schedule_json
    from comet.agent.client_cli.vaults import vault_json

__all__ = [
    "GROUPS",
    "PROG",
    "AgentClient",
    "CliError",
    "CommandGroup",
    "build_parser",
    "command_of",
    "entry_json",
    "finish_job",
    "item_json",
    "job_json",
    "main",
    "run",
    "schedule_json",
    "size_arg",
    "snapshot_json",
    "status_json",
    "vault_json",
    "wait_for_job",
]


@dataclass(frozen=True)
class CommandGroup:
    """A command group: the module whose ``register`` function (``function``) adds
    its subcommands, and the top-level command names it adds."""

    module: str
    commands: tuple[str, ...]
    function: str = "register"

    def load(self) -> Callable[[Any], None]:
        register: Callable[[Any], None] = getattr(
            importlib.import_module(self.module), self.function
        )
        return register


_HERE = __name__
# The command groups, in the order ``comet --help`` lists them. A command imports
# only its own group: every group's imports together (TOTP, mount, listing output and
# the rest) were ~0.1 s of each command's start, a twentieth of an unchanged backup.
# tests/agent/test_cli_contract.py checks ``commands`` against what each group adds.
GROUPS: tuple[CommandGroup, ...] = (
    CommandGroup(
        f"{_HERE}.account",
        ("login", "status", "lock", "unlock-app", "change-password", "disconnect"),
    ),
    CommandGroup(f"{_HERE}.vaults", ("vault",)),
    CommandGroup(f"{_HERE}.items", ("item",)),
    CommandGroup(f"{_HERE}.schedules", ("schedule",)),
    CommandGroup(f"{_HERE}.backup", ("backup",)),
    CommandGroup(f"{_HERE}.browse", ("snapshots", "ls", "find")),
    CommandGroup(f"{_HERE}.snapshot_tools", ("diff", "dump", "stats")),
    CommandGroup(f"{_HERE}.restore", ("restore",)),
    CommandGroup(f"{_HERE}.jobs", ("history", "job")),
    CommandGroup(
        f"{_HERE}.maintenance",
        ("delete-snapshot", "retention", "reindex", "verify", "unlock", "remeasure"),
    ),
    CommandGroup(f"{_HERE}.imports", ("import",)),
    CommandGroup("comet.agent.mount_commands", ("mount", "unmount"), "add_mount_commands"),
    CommandGroup("comet.agent.cli_totp", ("totp",), "add_totp_commands"),
)

# Names this package re-exports from its group modules, imported when first used.
_REEXPORTS = {
    "status_json": "account",
    "entry_json": "browse",
    "size_arg": "browse",
    "snapshot_json": "browse",
    "item_json": "items",
    "finish_job": "jobs",
    "job_json": "jobs",
    "wait_for_job": "jobs",
    "schedule_json": "schedules",
    "vault_json": "vaults",
}


def __getattr__(name: str) -> Any:
    module = _REEXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{_HERE}.{module}"), name)


def command_of(argv: Sequence[str]) -> str | None:
    """The top-level command ``argv`` names, or None when the parser must know every
    command: no command, a help request before it, or a word no group claims (the
    error then lists every command). Skips ``--socket PATH`` (and the abbreviations
    argparse accepts for it)."""
    args = iter(argv)
    for arg in args:
        if arg == "--":
            arg = next(args, "")
        elif arg.startswith("-"):
            if arg.startswith("--") and "=" not in arg and "--socket".startswith(arg):
                next(args, None)  # the option's value
            elif arg in ("-h", "--help") or not arg.startswith("--s"):
                return None
            continue
        claimed = any(arg in group.commands for group in GROUPS)
        return arg if claimed else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``command`` of that command's group only."""
    parser = OneLineParser(prog=PROG, description="Control the local Comet agent.")
    parser.add_argument("--socket", type=Path, default=None, help="the agent's unix socket")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        if command is None or command in group.commands:
            group.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status. Without ``argv`` (the ``comet``
    program itself) the process ends here instead, once stdout and stderr are flushed:
    the interpreter's teardown (grpc, protobuf, every module's objects) took ~0.05-0.08 s
    of CPU at the end of each command, and the CLI leaves nothing for it to finish (it
    writes only to stdout and stderr; the agent sees the connection close either way)."""
    if argv is not None:
        return run(argv)
    code = run(sys.argv[1:])
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = stdout_reader_gone()
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)


def run(argv: list[str]) -> int:
    """Parse ``argv``, run the command, and return the exit status."""
    args = build_parser(command_of(argv)).parse_args(argv)
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
