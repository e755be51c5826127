"""What every ``comet`` command group shares: the agent client, the CLI's error type,
the parser class and password input. Imports no command module."""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import grpc

from comet.agent.transport import rpc_error_message
from comet.v1 import agent_api_pb2_grpc

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "comet"


class CliError(Exception):
    pass


class AgentClient:
    """A synchronous client of the local agent's API."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        try:
            socket_path.stat()
        except FileNotFoundError:
            raise CliError(
                f"the Comet agent is not running (no socket at {socket_path}); start it with "
                "'comet-agent run' or point --socket / COMET_AGENT_SOCKET at it"
            ) from None
        except PermissionError:
            raise CliError(_not_yours(socket_path.parent)) from None
        if not os.access(socket_path, os.R_OK | os.W_OK):
            raise CliError(_not_yours(socket_path))
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.api = agent_api_pb2_grpc.AgentApiStub(self.channel)

    def failure(self, error: grpc.RpcError) -> str:
        """The sentence for a failed call: the agent's own, or that it does not answer."""
        if (
            isinstance(error, grpc.Call)
            and error.code() == grpc.StatusCode.UNAVAILABLE
            and "unix:" in (error.details() or "")
        ):
            return (
                f"the Comet agent does not answer at {self.socket_path} (it may have stopped);"
                " start it with 'comet-agent run', or check its log"
            )
        return rpc_error_message(error)


def _not_yours(path: Path) -> str:
    try:
        owner = pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        owner = "another user"
    return (
        f"permission denied on the agent's socket {path}: it belongs to {owner}; run comet"
        f" as {owner} (or with sudo), or point --socket at an agent of your own"
    )


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
