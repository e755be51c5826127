"""``comet totp enable|confirm|disable``: two-factor authentication for the logged-in
account, through the local agent (which uses this device's credential, so no device
is registered)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from comet.agent.output import print_json
from comet.agent.totp_prompt import add_totp_parsers, read_code, show_enrolment
from comet.v1 import agent_api_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli import AgentClient


def add_totp_commands(sub: Any) -> None:
    add_totp_parsers(
        sub,
        tool="comet",
        enable=cmd_totp_enable,
        confirm=cmd_totp_confirm,
        disable=cmd_totp_disable,
    )


def code(args: argparse.Namespace, what: str) -> str:
    try:
        return read_code(from_stdin=args.code_stdin, what=what)
    except ValueError as e:
        from comet.agent.totp_link import TotpError  # its server transport, only here

        raise TotpError(str(e)) from e


def cmd_totp_enable(client: AgentClient, args: argparse.Namespace) -> None:
    reply = client.api.BeginTotp(agent_api_pb2.LocalBeginTotpRequest(), timeout=60)
    if args.json:
        print_json({"secret": reply.secret, "otpauth_uri": reply.otpauth_uri})
    else:
        show_enrolment(reply.secret, reply.otpauth_uri)
    if args.begin_only:
        return
    cmd_totp_confirm(client, args)


def cmd_totp_confirm(client: AgentClient, args: argparse.Namespace) -> None:
    entered = code(args, "code from the authenticator app")
    client.api.ConfirmTotp(agent_api_pb2.LocalTotpCodeRequest(code=entered), timeout=60)
    if not getattr(args, "json", False):
        print("two-factor authentication is on: logins now need a code")


def cmd_totp_disable(client: AgentClient, args: argparse.Namespace) -> None:
    entered = code(args, "current code from the authenticator app")
    client.api.DisableTotp(agent_api_pb2.LocalTotpCodeRequest(code=entered), timeout=60)
    print("two-factor authentication is off")
