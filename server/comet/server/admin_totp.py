"""``comet-admin totp enable|confirm|disable`` (two-factor for the administrator's own
account, through the stored admin session) and ``comet-admin user reset-totp``."""

from __future__ import annotations

import argparse
from typing import Any

from comet.agent.output import print_json
from comet.agent.totp_prompt import add_totp_parsers, read_code, show_enrolment
from comet.server.admin_session import Admin, AdminCliError, load_session
from comet.v1 import admin_pb2, control_pb2, control_pb2_grpc


def add_totp_commands(sub: Any, user: Any) -> None:
    add_totp_parsers(
        sub,
        tool="comet-admin",
        enable=cmd_totp_enable,
        confirm=cmd_totp_confirm,
        disable=cmd_totp_disable,
    )
    reset = user.add_parser(
        "reset-totp", help="turn a user's 2FA off (a lost authenticator; SUPER admins)"
    )
    reset.add_argument("name")
    reset.set_defaults(func=cmd_user_reset_totp)


def _code(args: argparse.Namespace, what: str) -> str:
    try:
        return read_code(from_stdin=args.code_stdin, what=what)
    except ValueError as e:
        raise AdminCliError(str(e)) from e


def _auth(admin: Admin) -> control_pb2_grpc.AuthServiceStub:
    return control_pb2_grpc.AuthServiceStub(admin.channel)


def cmd_totp_enable(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = _auth(admin).BeginTotpEnrolment(
        control_pb2.BeginTotpEnrolmentRequest(), metadata=admin.metadata, timeout=30
    )
    if args.json:
        print_json({"secret": reply.secret, "otpauth_uri": reply.otpauth_uri})
    else:
        show_enrolment(reply.secret, reply.otpauth_uri)
    if not args.begin_only:
        cmd_totp_confirm(args)


def cmd_totp_confirm(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    code = _code(args, "code from the authenticator app")
    _auth(admin).ConfirmTotpEnrolment(
        control_pb2.ConfirmTotpEnrolmentRequest(code=code), metadata=admin.metadata, timeout=30
    )
    if not getattr(args, "json", False):
        print("two-factor authentication is on: logins now need --totp CODE")


def cmd_totp_disable(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    code = _code(args, "current code from the authenticator app")
    _auth(admin).DisableTotp(
        control_pb2.DisableTotpRequest(code=code), metadata=admin.metadata, timeout=30
    )
    print("two-factor authentication is off")


def cmd_user_reset_totp(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    admin.stub.ResetUserTotp(
        admin_pb2.ResetUserTotpRequest(username=args.name), metadata=admin.metadata, timeout=30
    )
    print(f"two-factor authentication of {args.name!r} is off")
