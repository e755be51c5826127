"""``comet``: the command-line client of the local agent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc

from comet.agent.config import default_socket_path
from comet.agent.output import fail, print_json
from comet.agent.transport import parse_server_url, rpc_error_message
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc

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


def cmd_login(client: AgentClient, args: argparse.Namespace) -> None:
    parse_server_url(args.server)  # a clear error before anything is sent
    reply = client.api.Login(
        agent_api_pb2.AgentLoginRequest(
            server=args.server,
            username=args.username,
            password=read_password(),
            totp_code=args.totp or "",
            device_name=args.device_name or "",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Control the local Comet agent.")
    parser.add_argument("--socket", type=Path, default=None, help="the agent's unix socket")
    sub = parser.add_subparsers(dest="command", required=True)

    login = sub.add_parser("login", help="log the agent in (registers this device once)")
    login.add_argument("--server", required=True, help="e.g. http://127.0.0.1:8060/")
    login.add_argument("--username", required=True)
    login.add_argument("--password-stdin", action="store_true", required=True)
    login.add_argument("--device-name", help="friendly name (default: the host name)")
    login.add_argument("--totp", help="two-factor code, if enabled")
    login.add_argument("--json", action="store_true")
    login.set_defaults(func=cmd_login)

    status = sub.add_parser("status", help="show login and connection state")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    lock = sub.add_parser("lock", help="log the app out; the agent and schedules keep running")
    lock.add_argument("--json", action="store_true")
    lock.set_defaults(func=cmd_lock)

    disconnect = sub.add_parser("disconnect", help="log the agent out; schedules stop")
    disconnect.add_argument("--json", action="store_true")
    disconnect.set_defaults(func=cmd_disconnect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = AgentClient(args.socket or default_socket_path())
        args.func(client, args)
    except grpc.RpcError as e:
        return fail(PROG, rpc_error_message(e))
    except CliError as e:
        return fail(PROG, str(e))
    except Exception as e:
        from comet.agent.errors import AgentError

        if isinstance(e, AgentError):
            return fail(PROG, str(e))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
