"""``comet login|status|lock|unlock-app|change-password|disconnect``: the agent's
session with the server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comet.agent.client_cli.common import AgentClient, CliError, read_password
from comet.agent.output import print_json, rfc3339
from comet.agent.transport import normalise_fingerprint, parse_server_url
from comet.agent.trust_prompt import ask_to_trust
from comet.v1 import agent_api_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


def status_json(status: agent_api_pb2.StatusReply) -> dict[str, Any]:
    return {
        "logged_in": status.logged_in,
        "locked": status.locked,
        "server": status.server or None,
        "username": status.username or None,
        "device_id": status.device_id or None,
        "device_name": status.device_name or None,
        "connected": status.connected,
        "running_jobs": list(status.running_jobs),
        "version": status.version,
        "last_error": status.last_error or None,
        "outbox_pending": status.outbox_pending,
        "outbox_rejected": status.outbox_rejected,
        "last_contact": rfc3339(status.last_contact) if status.HasField("last_contact") else None,
        "next_scheduled_run": (
            rfc3339(status.next_scheduled_run) if status.HasField("next_scheduled_run") else None
        ),
    }


def print_status(status: agent_api_pb2.StatusReply, as_json: bool) -> None:
    if as_json:
        print_json(status_json(status))
        return
    if not status.logged_in:
        print("not logged in" + (f" ({status.last_error})" if status.last_error else ""))
        return
    state = "locked" if status.locked else "logged in"
    link = "connected" if status.connected else "not connected"
    print(f"{state} to {status.server} as {status.username}; device {status.device_id}; {link}")
    if status.outbox_pending or status.outbox_rejected:
        print(
            f"job records: {status.outbox_pending} waiting to be sent, "
            f"{status.outbox_rejected} refused by the server"
        )
    if status.last_error:
        print(f"last error: {status.last_error}")


def cmd_login(client: AgentClient, args: argparse.Namespace) -> None:
    address = parse_server_url(args.server)  # a clear error before anything is sent
    try:
        ca_pem = args.ca.read_text() if args.ca else ""
    except OSError as e:
        raise CliError(f"--ca: cannot read {args.ca}: {e.strerror}") from e
    fingerprint = ""
    if args.trust_fingerprint:
        fingerprint = normalise_fingerprint(args.trust_fingerprint)
    elif address.secure and not ca_pem and sys.stdin.isatty():
        fingerprint = confirm_certificate(client, address.url)
    # Without a confirmation the agent refuses an unvouched certificate itself, with
    # a one-line message naming the fingerprint and --trust-fingerprint.
    reply = client.api.Login(
        agent_api_pb2.AgentLoginRequest(
            server=args.server,
            username=args.username,
            password=read_password(),
            totp_code=args.totp or "",
            device_name=args.device_name or "",
            ca_pem=ca_pem,
            trust_fingerprint=fingerprint,
        ),
        timeout=120,
    )
    if args.json:
        doc = status_json(reply.status)
        doc["device_registered_now"] = reply.device_registered_now
        print_json(doc)
        return
    if reply.device_registered_now:
        print(f"registered this device as {reply.status.device_id}")
    print_status(reply.status, False)


def confirm_certificate(client: AgentClient, url: str) -> str:
    """On a terminal: the fingerprint the person confirmed for a certificate no
    authority vouches for and nothing pins yet, else "" (verified, already pinned, or
    changed, which only --trust-fingerprint may re-pin)."""
    seen = client.api.ServerCertificate(
        agent_api_pb2.ServerCertificateRequest(server=url), timeout=30
    )
    if seen.verified or seen.pinned_fingerprint:
        return ""
    if not ask_to_trust(url, seen.fingerprint):
        raise CliError(f"not logged in: the certificate {seen.fingerprint} was not trusted")
    return seen.fingerprint


def cmd_status(client: AgentClient, args: argparse.Namespace) -> None:
    print_status(client.api.Status(agent_api_pb2.StatusRequest(), timeout=30), args.json)


def cmd_lock(client: AgentClient, args: argparse.Namespace) -> None:
    status = client.api.Lock(agent_api_pb2.LockRequest(), timeout=30)
    if args.json:
        print_json(status_json(status))
    else:
        print("locked: the agent stays logged in and schedules keep running")


def cmd_disconnect(client: AgentClient, args: argparse.Namespace) -> None:
    status = client.api.Disconnect(agent_api_pb2.DisconnectRequest(), timeout=30)
    if args.json:
        print_json(status_json(status))
    else:
        print("disconnected: the agent is logged out and schedules stop")


def cmd_unlock(client: AgentClient, args: argparse.Namespace) -> None:
    status = client.api.Unlock(agent_api_pb2.UnlockRequest(password=read_password()), timeout=60)
    print_status(status, args.json)


def cmd_change_password(client: AgentClient, args: argparse.Namespace) -> None:
    current, new = read_password(), read_password()
    client.api.ChangePassword(
        agent_api_pb2.LocalChangePasswordRequest(current_password=current, new_password=new),
        timeout=120,
    )
    print("password changed; every vault key was re-wrapped under the new password")


def register(sub: Subcommands) -> None:
    login = sub.add_parser("login", help="log the agent in (registers this device once)")
    login.add_argument("--server", required=True, help="e.g. http://127.0.0.1:8060/")
    login.add_argument("--username", required=True)
    login.add_argument("--password-stdin", action="store_true", required=True)
    login.add_argument("--device-name", help="friendly name (default: the host name)")
    login.add_argument("--totp", help="two-factor code, if enabled")
    login.add_argument(
        "--ca",
        type=Path,
        help="https: the server's certificate must be signed by this CA (PEM)",
    )
    login.add_argument(
        "--trust-fingerprint",
        metavar="SHA256:…",
        help="https: trust the server's self-signed certificate if its SHA-256 fingerprint "
        "is this (first login, or re-pinning a certificate the server changed)",
    )
    login.add_argument("--json", action="store_true")
    login.set_defaults(func=cmd_login)

    status = sub.add_parser("status", help="show login and connection state")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    lock = sub.add_parser("lock", help="log the app out; the agent and schedules keep running")
    lock.add_argument("--json", action="store_true")
    lock.set_defaults(func=cmd_lock)

    # "unlock" is the vault job (remove stale locks); this reopens a locked app.
    unlock = sub.add_parser("unlock-app", help="open the app again after 'comet lock'")
    unlock.add_argument("--password-stdin", action="store_true", required=True)
    unlock.add_argument("--json", action="store_true")
    unlock.set_defaults(func=cmd_unlock)

    passwd = sub.add_parser(
        "change-password", help="change the account password (two lines on stdin)"
    )
    passwd.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the current password, then the new one, from stdin",
    )
    passwd.set_defaults(func=cmd_change_password)

    disconnect = sub.add_parser("disconnect", help="log the agent out; schedules stop")
    disconnect.add_argument("--json", action="store_true")
    disconnect.set_defaults(func=cmd_disconnect)
