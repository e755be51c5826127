"""``comet vault add|list``: Storage Vaults of the account."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comet.agent.client_cli.common import AgentClient, CliError, read_password
from comet.agent.output import print_json, print_table
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands

VAULT_TYPES = {"local": 1002, "s3": 1000, "sftp": 1001, "comet": 1003}


def vault_json(vault: common_pb2.StorageVault) -> dict[str, Any]:
    settings = vault.WhichOneof("settings")
    where = {
        "local": vault.local.path,
        "s3": f"{vault.s3.endpoint} {vault.s3.bucket}/{vault.s3.prefix}",
        "sftp": f"{vault.sftp.username}@{vault.sftp.host}:{vault.sftp.port}{vault.sftp.path}",
        "comet": vault.comet.bucket_id,
    }.get(settings or "", "")
    return {
        "vault_id": vault.vault_id,
        "name": vault.name,
        "type": (settings or "").lower(),
        "type_code": vault.type,
        "location": where,
        "quota_bytes": vault.quota_bytes,
        "immutable_days": vault.immutable_days,
        "immutable_seconds": vault.immutable_seconds or vault.immutable_days * 86400,
        "protected_until": protected_until(vault),
    }


def protected_until(vault: common_pb2.StorageVault) -> str:
    """Until when what is written now stays protected ("" for a mutable vault)."""
    seconds = vault.immutable_seconds or vault.immutable_days * 86400
    if not seconds:
        return ""
    from datetime import UTC, datetime, timedelta

    until = datetime.now(UTC) + timedelta(seconds=seconds)
    return f"new data: {until.isoformat(timespec='seconds')}"


def pin_sftp_host_key(host: str, port: int, given: str | None) -> str:
    """The host key to pin for an SFTP vault (``"<type> <base64>"``): the one the server
    presents, if it matches ``given`` (``--host-key``), or if a person at a terminal
    confirms its fingerprint. Without either, refuse and show the fingerprint."""
    from comet.agent.storage.base import StorageError
    from comet.agent.storage.sftp import (
        describe_host_key,
        fetch_host_key,
        host_key_fingerprint,
        host_key_matches,
        parse_host_key_pin,
    )

    where = f"{host}:{port}"
    try:
        pin = parse_host_key_pin(given) if given else None
        seen = fetch_host_key(host, port)
    except StorageError as e:
        raise CliError(f"cannot pin the host key of the SFTP server {where}: {e}") from e
    shown = describe_host_key(seen)
    if pin is not None:
        if not host_key_matches(pin, seen):
            raise CliError(
                f"the SFTP server {where} presents host key {shown}, not the"
                f" {describe_host_key(pin)} given with --host-key; no vault was added"
            )
        return seen
    if ask_trust(where, shown, refused="host key not trusted; no vault was added"):
        return seen
    raise CliError(
        f"the SFTP server {where} presents host key {shown}; check it and run again with"
        f" --host-key {host_key_fingerprint(seen)} to trust it"
    )


def ask_trust(where: str, shown: str, *, refused: str, note: str = "") -> bool:
    """On a terminal, show the host key and ask; True if trusted, CliError(``refused``)
    if not. False when nobody is at a terminal to ask."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    print(f"The SFTP server {where} presents host key {shown}.", file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    print("Compare it with the server's own (ssh-keygen -lf on its key).", file=sys.stderr)
    sys.stderr.write("Trust this host key? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() in ("y", "yes"):
        return True
    raise CliError(refused)


def cmd_vault_add(client: AgentClient, args: argparse.Namespace) -> None:
    vault = common_pb2.StorageVault(
        name=args.name,
        type=VAULT_TYPES[args.type],  # type: ignore[arg-type]
        quota_bytes=args.quota or 0,
        immutable_days=args.immutable_days or 0,
        immutable_seconds=args.immutable_seconds or 0,
        object_lock_mode=(
            common_pb2.OBJECT_LOCK_MODE_COMPLIANCE
            if args.object_lock_mode == "compliance"
            else common_pb2.OBJECT_LOCK_MODE_GOVERNANCE
        ),
    )
    if (args.immutable_days or args.immutable_seconds) and args.type in ("local", "sftp"):
        raise CliError(
            f"a {args.type} vault cannot be immutable: anyone with root on this device (or the"
            " SFTP login) can delete its files; use --type comet, or --type s3 on a bucket"
            " with Object Lock"
        )
    if args.type == "local":
        if not args.path:
            raise CliError("--type local needs --path DIR")
        vault.local.path = str(Path(args.path).absolute())
    elif args.type == "s3":
        if not (args.endpoint and args.bucket and args.access_key and args.secret_key_stdin):
            raise CliError(
                "--type s3 needs --endpoint, --bucket, --access-key and --secret-key-stdin"
            )
        vault.s3.CopyFrom(
            common_pb2.S3VaultSettings(
                endpoint=args.endpoint,
                bucket=args.bucket,
                prefix=args.prefix or "",
                access_key=args.access_key,
                secret_key=read_password(),
                region=args.region or "",
            )
        )
    elif args.type == "sftp":
        if not (args.host and args.user and args.path):
            raise CliError("--type sftp needs --host, --user and --path")
        if not args.key and not args.password_stdin:
            raise CliError("--type sftp needs --key FILE or --password-stdin")
        host_key = pin_sftp_host_key(args.host, args.port or 22, args.host_key)
        vault.sftp.CopyFrom(
            common_pb2.SftpVaultSettings(
                host=args.host,
                port=args.port or 22,
                username=args.user,
                path=args.path,
                password=read_password() if args.password_stdin else "",
                private_key=Path(args.key).read_text() if args.key else "",
                host_key=host_key,
            )
        )
    else:
        vault.comet.SetInParent()
    ranges = [
        (common_pb2.RETENTION_RANGE_MOST_RECENT_X_JOBS, "jobs", args.keep_last),
        (common_pb2.RETENTION_RANGE_JOBS_SINCE, "days", args.keep_within_days),
        (common_pb2.RETENTION_RANGE_LAST_X_BACKUPS_ONE_PER_DAY, "jobs", args.keep_daily),
        (common_pb2.RETENTION_RANGE_LAST_X_BACKUPS_ONE_PER_WEEK, "jobs", args.keep_weekly),
        (common_pb2.RETENTION_RANGE_LAST_X_BACKUPS_ONE_PER_MONTH, "jobs", args.keep_monthly),
    ]
    for range_type, field, value in ranges:
        if value:
            vault.default_retention.mode = common_pb2.RETENTION_MODE_DELETE_EXCEPT
            vault.default_retention.ranges.append(
                common_pb2.RetentionRange(type=range_type, **{field: value})
            )
    vault.pre_commands.extend(common_pb2.ProgramCommand(command=c) for c in args.pre or [])
    vault.post_commands.extend(common_pb2.ProgramCommand(command=c) for c in args.post or [])
    add = client.api.AttachVault if args.attach else client.api.AddVault
    saved = add(agent_api_pb2.AddVaultRequest(vault=vault), timeout=120)
    if args.json:
        print_json({"vault_id": saved.vault_id})
    else:
        print(saved.vault_id)


def cmd_vault_list(client: AgentClient, args: argparse.Namespace) -> None:
    profile = client.api.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=60)
    rows = [vault_json(v) for v in profile.vaults]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["vault_id", "name", "type", "location", "protected_until"])


def register(sub: Subcommands) -> None:
    vault = sub.add_parser("vault", help="Storage Vaults").add_subparsers(dest="sub", required=True)
    vadd = vault.add_parser("add", help="add a Storage Vault (prints its id)")
    vadd.add_argument("name")
    vadd.add_argument("--type", choices=sorted(VAULT_TYPES), required=True)
    vadd.add_argument("--path", help="local: the directory; sftp: the remote directory")
    vadd.add_argument("--endpoint", help="s3: endpoint URL")
    vadd.add_argument("--bucket")
    vadd.add_argument("--prefix")
    vadd.add_argument("--region")
    vadd.add_argument("--access-key")
    vadd.add_argument("--secret-key-stdin", action="store_true")
    vadd.add_argument("--host")
    vadd.add_argument("--port", type=int)
    vadd.add_argument("--user")
    vadd.add_argument("--key", help="sftp: private key file")
    vadd.add_argument(
        "--host-key",
        help="sftp: the server's host key to pin: SHA256:<fingerprint>, 'type base64' or a"
        " known_hosts line (without it the fingerprint is shown and confirmed on a terminal)",
    )
    vadd.add_argument("--password-stdin", action="store_true")
    vadd.add_argument("--quota", type=int, help="quota in bytes")
    vadd.add_argument(
        "--immutable-days",
        type=int,
        help="immutable vault: nothing written can be deleted or overwritten for N days"
        " (comet: enforced by the server; s3: Object Lock; not possible for local/sftp)",
    )
    vadd.add_argument("--immutable-seconds", type=int, help=argparse.SUPPRESS)  # trials, tests
    vadd.add_argument(
        "--object-lock-mode",
        choices=("governance", "compliance"),
        default="governance",
        help="s3: the Object Lock mode of an immutable vault (compliance: not even the"
        " bucket's root account can shorten it)",
    )
    vadd.add_argument("--pre", action="append", help="command to run before each backup")
    vadd.add_argument("--post", action="append", help="command to run after each backup")
    retention = vadd.add_argument_group(
        "default retention (none given: keep everything; several: kept if any keeps it)"
    )
    retention.add_argument("--keep-last", type=int, help="the N most recent snapshots")
    retention.add_argument("--keep-within-days", type=int, help="snapshots of the last N days")
    retention.add_argument("--keep-daily", type=int, help="one per day, last N days with one")
    retention.add_argument("--keep-weekly", type=int, help="one per week, last N weeks")
    retention.add_argument("--keep-monthly", type=int, help="one per month, last N months")
    vadd.add_argument(
        "--attach",
        action="store_true",
        help="adopt the Comet repository already at this location (it must open with one"
        " of this account's vault keys) instead of creating one",
    )
    vadd.add_argument("--json", action="store_true")
    vadd.set_defaults(func=cmd_vault_add)
    vlist = vault.add_parser("list", help="list Storage Vaults")
    vlist.add_argument("--json", action="store_true")
    vlist.set_defaults(func=cmd_vault_list)
    from comet.agent.client_cli import profile_edit  # it builds on this module

    profile_edit.add_vault_commands(vault)
