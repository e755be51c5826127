"""``comet-admin``: the administrator's command-line client of a Comet Server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc

from comet.agent.certificate_trust import (
    decide_trust,
    explain_refused_certificate,
    probe_certificate,
)
from comet.agent.credentials import KdfParams, derive_login_secrets, require_no_downgrade
from comet.agent.errors import AgentError, os_error_sentence
from comet.agent.output import fail, print_json, print_table, rfc3339, stdout_reader_gone
from comet.agent.transport import (
    ServerTrust,
    normalise_fingerprint,
    parse_server_url,
    refused_certificate,
    rpc_error_message,
    sync_channel,
)
from comet.agent.trust_prompt import ask_to_trust
from comet.server import (
    admin_api_keys,
    admin_buckets,
    admin_dispatch,
    admin_jobs,
    admin_notify,
    admin_policies,
)
from comet.server.admin_names import AdminNames
from comet.server.admin_session import (
    Admin,
    AdminCliError,
    AdminSession,
    derive_for_new_password,
    kdf_proto,
    load_session,
    pinned_certificate,
    read_password,
    recorded_kdf,
    save_session,
)
from comet.server.admin_totp import add_totp_commands
from comet.v1 import admin_pb2, common_pb2, control_pb2, control_pb2_grpc

PROG = "comet-admin"
ROLES = {
    "super": admin_pb2.ADMIN_ROLE_SUPER,
    "operator": admin_pb2.ADMIN_ROLE_OPERATOR,
    "auditor": admin_pb2.ADMIN_ROLE_AUDITOR,
    "user": admin_pb2.ADMIN_ROLE_USER,
}


# ---------------------------------------------------------------------------- commands


LOGIN_COMMAND = "comet-admin login"


def login_trust(server: str, ca: Path | None, fingerprint: str) -> ServerTrust | None:
    """https: the server's certificate must be valid under --ca or the system roots,
    or match the pin from an earlier login, or be confirmed now (on a terminal, or
    with --trust-fingerprint). Nothing but a TLS handshake reaches a server that
    fails this."""
    address = parse_server_url(server)
    if not address.secure:
        return None
    try:
        ca_pem = ca.read_bytes() if ca is not None else b""
    except OSError as e:
        raise AdminCliError(f"--ca: cannot read {ca}: {e.strerror}") from e
    confirmed = normalise_fingerprint(fingerprint) if fingerprint else ""
    presented = probe_certificate(address.url, ca_pem=ca_pem)
    pinned = pinned_certificate(address.url)
    unvouched = not (ca_pem or presented.verified or pinned or confirmed)
    if unvouched and sys.stdin.isatty():
        if not ask_to_trust(address.url, presented.fingerprint):
            raise AdminCliError(
                f"not logged in: the certificate {presented.fingerprint} was not trusted"
            )
        confirmed = presented.fingerprint
    return decide_trust(
        address.url,
        presented,
        ca_pem=ca_pem,
        pinned_pem=pinned,
        confirmed=confirmed,
        login_command=LOGIN_COMMAND,
    )


def cmd_login(args: argparse.Namespace) -> None:
    trust = login_trust(args.server, args.ca, args.trust_fingerprint or "")
    password = read_password()
    url = parse_server_url(args.server).url
    channel = sync_channel(args.server, trust=trust)
    auth = control_pb2_grpc.AuthServiceStub(channel)
    pre = auth.PreLogin(control_pb2.PreLoginRequest(username=args.username), timeout=30)
    kdf = KdfParams(pre.kdf.algorithm, pre.kdf.salt, pre.kdf.log2_n, pre.kdf.r, pre.kdf.p)
    require_no_downgrade(recorded_kdf(url, args.username), kdf)
    secrets = derive_login_secrets(password, kdf)
    reply = auth.Login(
        control_pb2.LoginRequest(
            username=args.username,
            auth_key=secrets.auth_key,
            totp_code=args.totp or "",
            admin_session=True,
        ),
        timeout=30,
    )
    save_session(AdminSession(url, args.username, reply.session_token, trust), kdf=kdf)
    print(f"logged in to {parse_server_url(args.server).url} as {args.username}")


def user_json(user: admin_pb2.UserInfo) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "username": user.username,
        "admin": user.role not in (admin_pb2.ADMIN_ROLE_USER, admin_pb2.ADMIN_ROLE_UNSPECIFIED),
        "role": admin_pb2.AdminRole.Name(user.role).removeprefix("ADMIN_ROLE_").lower(),
        "max_devices": user.max_devices,
        "devices": user.device_count,
        "created_at": rfc3339(user.created_at),
        "totp_enabled": user.totp_enabled,
    }


def cmd_user_add(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    kdf, auth_key = derive_for_new_password(read_password())
    if args.admin and args.role not in (None, "super"):
        raise AdminCliError(f"--admin means --role super; it cannot go with --role {args.role}")
    role = ROLES["super" if args.admin else (args.role or "user")]
    user = admin.stub.AddUser(
        admin_pb2.AddUserRequest(
            username=args.name,
            kdf=kdf_proto(kdf),
            auth_key=auth_key,
            role=role,
            max_devices=args.max_devices,
        ),
        metadata=admin.metadata,
        timeout=30,
    )
    if args.json:
        print_json(user_json(user))
    else:
        print(f"user {user.username!r} created")


def cmd_user_list(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.ListUsers(admin_pb2.ListUsersRequest(), metadata=admin.metadata, timeout=30)
    rows = [user_json(u) for u in reply.users]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            row["2fa"] = "on" if row["totp_enabled"] else "off"
        print_table(rows, ["username", "role", "2fa", "devices", "max_devices", "created_at"])


def cmd_user_delete(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.DeleteUser(
        admin_pb2.DeleteUserRequest(username=args.name, keep_data=args.keep_data),
        metadata=admin.metadata,
        timeout=120,
    )
    kept = list(reply.kept_bucket_ids)
    if args.keep_data:
        print(
            f"user {args.name!r} deleted; their buckets were kept"
            f" (comet-admin bucket list --user {args.name})"
        )
    elif kept:
        print(
            f"user {args.name!r} deleted with their buckets, except {len(kept)} immutable"
            f" bucket(s) still under protection, kept until it ends ({', '.join(kept)};"
            f" comet-admin bucket list --user {args.name})"
        )
    else:
        print(f"user {args.name!r} deleted with their buckets")


def device_json(device: common_pb2.DeviceInfo) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "user": device.username,
        "name": device.name,
        "online": device.online,
        "registered_at": rfc3339(device.registered_at),
        "last_seen": rfc3339(device.last_seen),
        "os": device.os,
        "arch": device.arch,
        "client_version": device.client_version,
        "revoked": device.revoked,
    }


def cmd_device_list(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.ListDevices(
        admin_pb2.ListDevicesRequest(username=args.user or "", online_only=args.online),
        metadata=admin.metadata,
        timeout=30,
    )
    rows = [device_json(d) for d in reply.devices]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["device_id", "user", "name", "online", "last_seen"])


def cmd_device_revoke(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    device_id = AdminNames(admin).device_id(args.device_id, user=args.user or "")
    admin.stub.RevokeDevice(
        admin_pb2.RevokeDeviceRequest(device_id=device_id), metadata=admin.metadata, timeout=30
    )
    print(f"device {device_id} revoked")


def cmd_audit(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.ListAudit(
        admin_pb2.ListAuditRequest(action=args.action or "", limit=args.limit),
        metadata=admin.metadata,
        timeout=30,
    )
    rows = [
        {
            "time": rfc3339(e.time),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "source_address": e.source_address,
            "success": e.success,
            "details": e.details,
        }
        for e in reply.events
    ]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["time", "actor", "action", "target", "success", "details"])


def cmd_user_reset_password(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    kdf, auth_key = derive_for_new_password(read_password())
    reply = admin.stub.ResetPassword(
        admin_pb2.ResetPasswordRequest(
            username=args.name,
            kdf=kdf_proto(kdf),
            auth_key=auth_key,
            force=args.force,
            revoke_devices=args.revoke_devices,
        ),
        metadata=admin.metadata,
        timeout=30,
    )
    # There is no recovery path: old backups need the old password, whatever the reply.
    if args.json:
        result: dict[str, Any] = {"username": args.name, "old_backups_readable": False}
        if args.revoke_devices:
            result["devices_revoked"] = reply.devices_revoked
        print_json(result)
        return
    if args.revoke_devices:
        print(f"{reply.devices_revoked} device(s) of {args.name!r} revoked")
    print(
        f"password of {args.name!r} reset; warning: backups made with the old password "
        "cannot be read with the new one (the server holds no key to them)"
    )


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Administer a Comet Server.")
    sub = parser.add_subparsers(dest="command", required=True)

    login = sub.add_parser("login", help="log in as an administrator and store the session")
    login.add_argument("--server", required=True, help="server URL, e.g. http://127.0.0.1:8060/")
    login.add_argument("--username", required=True)
    login.add_argument("--password-stdin", action="store_true", required=True)
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
    login.set_defaults(func=cmd_login)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="sub", required=True)
    add = user.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", required=True)
    add.add_argument(
        "--admin", action="store_true", help="make the user a super administrator (--role super)"
    )
    add.add_argument(
        "--role",
        choices=sorted(ROLES),
        help="super: every admin action; operator: run jobs on devices, read; "
        "auditor: read only, with the audit log; user (default): no admin rights "
        "(see docs/permissions.md)",
    )
    add.add_argument("--max-devices", type=int, default=0, help="0 = unlimited")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_user_add)
    ls = user.add_parser("list", help="list users")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_user_list)
    rm = user.add_parser("delete", help="delete a user, their devices and their buckets")
    rm.add_argument("name")
    rm.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the user's Comet Server vault buckets (see 'bucket list'); no device can"
        " open them any more",
    )
    rm.set_defaults(func=cmd_user_delete)
    reset = user.add_parser("reset-password", help="set a new password for a user")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", required=True)
    reset.add_argument(
        "--force",
        action="store_true",
        help="reset even if the user did not allow administrators to reset their password"
        " (it revokes nothing: see --revoke-devices)",
    )
    reset.add_argument(
        "--revoke-devices",
        action="store_true",
        help="also revoke every device of the user: their tokens and bucket credentials stop"
        " working on every server instance at once (each must be registered again)",
    )
    reset.add_argument("--json", action="store_true")
    reset.set_defaults(func=cmd_user_reset_password)
    add_totp_commands(sub, user)

    device = sub.add_parser("device", help="manage devices").add_subparsers(
        dest="sub", required=True
    )
    dls = device.add_parser("list", help="list registered devices")
    dls.add_argument("--user")
    dls.add_argument("--online", action="store_true", help="only live-connected devices")
    dls.add_argument("--json", action="store_true")
    dls.set_defaults(func=cmd_device_list)
    revoke = device.add_parser("revoke", help="revoke a device")
    revoke.add_argument("device_id", help="device id or name")
    revoke.add_argument("--user", help="whose device, when several users have one so named")
    revoke.set_defaults(func=cmd_device_revoke)

    audit = sub.add_parser("audit", help="show the audit log")
    audit.add_argument("--action", help="e.g. login, user.add, device.revoke")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit)

    admin_jobs.add_parsers(sub)
    admin_policies.add_parsers(sub)
    admin_dispatch.add_parsers(sub)
    admin_buckets.add_parsers(sub)
    admin_notify.add_parsers(sub)
    admin_api_keys.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        sys.stdout.flush()  # a reader that went away is noticed here, not at exit
    except BrokenPipeError:
        return stdout_reader_gone()
    except grpc.RpcError as e:
        if refused_certificate(e) and args.func is not cmd_login:
            session = load_session()
            return fail(
                PROG, explain_refused_certificate(session.server, session.trust, LOGIN_COMMAND)
            )
        return fail(PROG, rpc_error_message(e))
    except (AdminCliError, AgentError) as e:
        return fail(PROG, str(e))
    except OSError as e:
        return fail(PROG, os_error_sentence(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
