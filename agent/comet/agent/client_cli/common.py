"""What every ``comet`` command group shares: the agent client, the CLI's error type,
the parser class and password input. Imports no command module."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import grpc

from comet.v1 import agent_api_pb2_grpc

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "comet"


class CliError(Exception):
    pass


class AgentClient:
    """A synchronous client of the local agent's API."""

    def __init__(self, socket_path: Path) -> None:
        if not socket_path.exists():
            raise CliError(
                f"the Comet agent is not running (no socket at {socket_path}); start it with "
                "'comet-agent run' or point --socket / COMET_AGENT_SOCKET at it"
            )
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.api = agent_api_pb2_grpc.AgentApiStub(self.channel)


def read_password() -> str:
    line = sys.stdin.readline()
    if not line:
        raise CliError("--password-stdin: no password on standard input")
    return line.rstrip("\n")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (the CLI contract); ``--help`` shows usage.
    Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")
