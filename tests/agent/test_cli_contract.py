"""The command-line contract of shared/CLI.md: the commands exist, each has --help, and
a command the contract names is never shadowed by another."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

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
