"""The command-line contract of shared/CLI.md: the commands exist, each has --help, and
a command the contract names is never shadowed by another."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comet.agent.client_cli import GROUPS, command_of
from comet.agent.client_cli import build_parser as comet_parser
from comet.server.admin_cli import build_parser as admin_parser

BIN = Path(sys.executable).parent

COMET_COMMANDS = {
    "login", "status", "lock", "disconnect", "vault", "item", "schedule", "backup",
    "snapshots", "ls", "find", "restore", "delete-snapshot", "retention", "reindex",
    "verify", "unlock", "history", "job", "import",
}  # fmt: skip
ADMIN_COMMANDS = {"login", "user", "device", "policy", "jobs", "job", "dispatch"}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_comet_has_every_contract_command() -> None:
    assert set(subcommands(comet_parser())) >= COMET_COMMANDS


def test_comet_admin_has_every_contract_command() -> None:
    assert set(subcommands(admin_parser())) >= ADMIN_COMMANDS
    dispatch = subcommands(subcommands(admin_parser())["dispatch"])
    assert {
        "backup",
        "restore",
        "retention",
        "reindex",
        "verify",
        "unlock",
        "delete-snapshot",
        "snapshots",
        "refetch",
        "cancel",
        "drop",
        "disconnect",
    } <= set(dispatch)


@pytest.mark.parametrize(
    "program", ["comet", "comet-admin", "comet-server", "comet-agent", "comet-gui"]
)
def test_every_installed_script_answers_help(program: str) -> None:
    result = subprocess.run(
        [str(BIN / program), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_every_subcommand_has_help() -> None:
    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        assert parser.format_help(), path
        for name, sub in subcommands(parser).items():
            walk(sub, f"{path} {name}")

    walk(comet_parser(), "comet")
    walk(admin_parser(), "comet-admin")


def test_each_command_group_lists_the_commands_it_adds() -> None:
    """``main`` imports only the group of the command it runs, found by name in
    ``GROUPS``: a group's list must be exactly what its module registers."""
    for group in GROUPS:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        group.load()(sub)
        assert tuple(sub.choices) == group.commands, group.module


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        ([], None),
        (["--help"], None),
        (["-h", "backup"], None),  # the help of every command
        (["backup", "home", "--vault", "v"], "backup"),
        (["--socket", "/run/s", "ls", "x"], "ls"),
        (["--sock", "/run/s", "ls"], "ls"),  # argparse's abbreviation of --socket
        (["--socket=/run/s", "verify"], "verify"),
        (["--", "totp"], "totp"),
        (["backups"], None),  # no such command: the error lists them all
        (["--json", "backup"], None),
    ],
)
def test_command_of_finds_the_command_word(argv: list[str], command: str | None) -> None:
    assert command_of(argv) == command


def test_a_command_parses_as_it_does_with_every_group() -> None:
    argv = ["--socket", "/run/s", "backup", "home", "--vault", "v", "--tag", "a", "--wait"]
    one, every = comet_parser(command_of(argv)).parse_args(argv), comet_parser().parse_args(argv)
    assert vars(one) == vars(every)


CLI_BACKUP_IMPORTS = """
import sys
from comet.agent import client_cli
try:
    client_cli.main(["--socket", "/nonexistent/comet.sock", "backup", "home", "--vault", "v"])
finally:
    print(",".join(sorted(m for m in sys.modules if m.startswith(OTHERS))))
"""


def test_comet_backup_imports_no_other_command_group() -> None:
    """Each command pays its group's imports only (~0.1 s of every ``comet backup``
    went to importing the other groups: TOTP, mount, listings, account)."""
    # backup follows its job with the jobs group's wait_for_job
    others = tuple(
        g.module for g in GROUPS if "backup" not in g.commands and g.commands != ("history", "job")
    )
    script = f"OTHERS = {others!r}\n" + CLI_BACKUP_IMPORTS
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


CLI_EXIT = """
import atexit, sys
from comet.agent import client_cli

def run(argv):
    print("x" * 100_000)  # more than one buffer: all of it must reach the pipe
    print("last line", file=sys.stderr)
    return 3

client_cli.run = run
atexit.register(lambda: print("torn down", file=sys.stderr))
sys.argv = ["comet", "status"]
client_cli.main()
"""


def test_the_comet_program_exits_without_the_interpreter_teardown() -> None:
    """``comet`` ends its process once the command is done and its output flushed:
    the teardown of grpc and protobuf cost each command ~0.05 s. Called with ``argv``
    (in-process), ``main`` returns."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    result = subprocess.run(
        [sys.executable, "-c", CLI_EXIT], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 3
    assert result.stdout == "x" * 100_000 + "\n"
    assert result.stderr == "last line\n"  # no atexit handler ran
