"""``comet``: the command-line client of the local agent."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from comet.agent.cli_import import cmd_import_preview
from comet.agent.cli_profile_edit import add_profile_edit_commands
from comet.agent.cli_snapshot_tools import (
    add_snapshot_filters,
    add_snapshot_tool_commands,
    cmd_retention_dry_run,
)
from comet.agent.cli_totp import add_totp_commands
from comet.agent.config import default_socket_path
from comet.agent.mount_commands import add_mount_commands
from comet.agent.output import fail, print_json, print_table, rfc3339
from comet.agent.transport import normalise_fingerprint, parse_server_url, rpc_error_message
from comet.agent.trust_prompt import ask_to_trust
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc, common_pb2

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


# ---------------------------------------------------------------------------- profile

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
    if sys.stdin.isatty() and sys.stderr.isatty():
        print(f"The SFTP server {where} presents host key {shown}.", file=sys.stderr)
        print("Compare it with the server's own (ssh-keygen -lf on its key).", file=sys.stderr)
        sys.stderr.write("Trust this host key? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return seen
        raise CliError("host key not trusted; no vault was added")
    raise CliError(
        f"the SFTP server {where} presents host key {shown}; check it and run again with"
        f" --host-key {host_key_fingerprint(seen)} to trust it"
    )


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


def item_json(item: common_pb2.ProtectedItem) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "name": item.name,
        "type": "program" if item.type == common_pb2.ITEM_TYPE_PROGRAM else "files",
        "device_id": item.owner_device_id,
        "includes": list(item.includes),
        "excludes": list(item.exclude_globs),
        "exclude_regexes": list(item.exclude_regexes),
        "command": item.program_command or None,
        "save_as": item.program_save_as or None,
    }


def cmd_item_add(client: AgentClient, args: argparse.Namespace) -> None:
    item = common_pb2.ProtectedItem(name=args.name, rescan_unchanged=args.rescan_unchanged)
    if args.type == "files":
        item.type = common_pb2.ITEM_TYPE_FILES
        item.includes.extend(str(Path(p).absolute()) for p in args.include or [])
        item.exclude_globs.extend(args.exclude or [])
        item.exclude_regexes.extend(args.exclude_regex or [])
    else:
        if not args.command or not args.save_as:
            raise CliError("--type program needs --command CMD and --save-as NAME")
        item.type = common_pb2.ITEM_TYPE_PROGRAM
        item.program_command = args.command
        item.program_save_as = args.save_as
    item.pre_commands.extend(common_pb2.ProgramCommand(command=c) for c in args.pre or [])
    item.post_commands.extend(common_pb2.ProgramCommand(command=c) for c in args.post or [])
    saved = client.api.AddItem(agent_api_pb2.AddItemRequest(item=item), timeout=60)
    if args.json:
        print_json({"item_id": saved.item_id})
    else:
        print(saved.item_id)


def cmd_item_delete(client: AgentClient, args: argparse.Namespace) -> None:
    profile = client.api.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=60)
    matches = [i for i in profile.items if args.item in (i.item_id, i.name)]
    if not matches:
        raise CliError(f"no Protected Item {args.item!r} in this account")
    doomed = matches[0].item_id
    kept = [i for i in profile.items if i.item_id != doomed]
    del profile.items[:]
    profile.items.extend(kept)
    schedules = [s for s in profile.schedules if s.item_id != doomed]
    del profile.schedules[:]
    profile.schedules.extend(schedules)
    client.api.SaveProfile(agent_api_pb2.SaveProfileRequest(profile=profile), timeout=60)
    print(f"Protected Item {doomed} deleted; its snapshots stay restorable as unknown items")


def cmd_item_list(client: AgentClient, args: argparse.Namespace) -> None:
    profile = client.api.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=60)
    rows = [item_json(i) for i in profile.items]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["item_id", "name", "type", "device_id"])


DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _hhmm(text: str) -> tuple[int, int]:
    try:
        hour, minute = (int(part) for part in text.split(":"))
    except ValueError as e:
        raise CliError(f"a time is HH:MM, not {text!r}") from e
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise CliError(f"a time is HH:MM, not {text!r}")
    return hour, minute


def _weekday(text: str) -> int:
    key = text.lower()[:3]
    if key not in DAYS:
        raise CliError(f"a weekday is one of {', '.join(DAYS)}, not {text!r}")
    return DAYS.index(key)


def cmd_schedule_add(client: AgentClient, args: argparse.Namespace) -> None:
    schedule = common_pb2.Schedule(
        item_id=args.item,
        vault_id=args.vault,
        skip_if_running=args.skip_if_running,
        stop_after_seconds=args.stop_after or 0,
        retry_count=args.retries or 0,
        retry_delay_seconds=args.retry_delay or 0,
        random_delay_seconds=args.random_delay or 0,
        run_at_boot=args.run_at_boot,
        run_at_boot_if_missed=args.run_at_boot_if_missed,
        bandwidth_limit_bps=args.bandwidth_limit or 0,
    )
    if args.daily:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_DAILY
        schedule.hour, schedule.minute = _hhmm(args.daily)
    elif args.hourly is not None:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_HOURLY
        schedule.minute = args.hourly
    elif args.weekly:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_WEEKLY
        schedule.weekdays.append(_weekday(args.weekly[0]))
        schedule.hour, schedule.minute = _hhmm(args.weekly[1])
    elif args.monthly:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_MONTHLY
        schedule.day_of_month = int(args.monthly[0])
        schedule.hour, schedule.minute = _hhmm(args.monthly[1])
    elif args.every:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_PERIODIC
        schedule.every_seconds = args.every
    else:
        raise CliError(
            "say when: --daily HH:MM, --hourly [MIN], --weekly DAY HH:MM, "
            "--monthly DAY HH:MM or --every SECONDS"
        )
    saved = client.api.AddSchedule(agent_api_pb2.AddScheduleRequest(schedule=schedule), timeout=60)
    if args.json:
        print_json({"schedule_id": saved.schedule_id})
    else:
        print(saved.schedule_id)


def schedule_json(s: common_pb2.Schedule) -> dict[str, Any]:
    when = {
        common_pb2.SCHEDULE_FREQUENCY_DAILY: f"daily {s.hour:02d}:{s.minute:02d}",
        common_pb2.SCHEDULE_FREQUENCY_HOURLY: f"hourly at :{s.minute:02d}",
        common_pb2.SCHEDULE_FREQUENCY_WEEKLY: "weekly "
        + ",".join(DAYS[d] for d in s.weekdays if d < 7)
        + f" {s.hour:02d}:{s.minute:02d}",
        common_pb2.SCHEDULE_FREQUENCY_MONTHLY: f"monthly day {s.day_of_month} "
        f"{s.hour:02d}:{s.minute:02d}",
        common_pb2.SCHEDULE_FREQUENCY_PERIODIC: f"every {s.every_seconds} s",
        common_pb2.SCHEDULE_FREQUENCY_ONCE: f"once at {rfc3339(s.once_at)}",
    }.get(s.frequency, "?")
    return {
        "schedule_id": s.schedule_id,
        "item_id": s.item_id,
        "vault_id": s.vault_id,
        "frequency": common_pb2.ScheduleFrequency.Name(s.frequency)
        .removeprefix("SCHEDULE_FREQUENCY_")
        .lower(),
        "frequency_code": s.frequency,
        "when": when,
        "enabled": s.enabled,
        "skip_if_running": s.skip_if_running,
        "stop_after_seconds": s.stop_after_seconds,
    }


def cmd_schedule_list(client: AgentClient, args: argparse.Namespace) -> None:
    profile = client.api.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=60)
    items = {i.item_id: i.name for i in profile.items}
    vaults = {v.vault_id: v.name for v in profile.vaults}
    rows = [
        {
            **schedule_json(s),
            "item_name": items.get(s.item_id),
            "vault_name": vaults.get(s.vault_id),
        }
        for s in profile.schedules
    ]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["schedule_id", "item_name", "vault_name", "when", "enabled"])


# ---------------------------------------------------------------------------- jobs


def job_json(job: common_pb2.Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "classification": common_pb2.JobClassification.Name(job.classification)
        .removeprefix("JOB_CLASSIFICATION_")
        .lower(),
        "classification_code": job.classification,
        "status": common_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower(),
        "status_code": job.status,
        "item_id": job.item_id or None,
        "vault_id": job.vault_id or None,
        "device_id": job.device_id,
        "snapshot_id": job.snapshot_id or None,
        "started_at": rfc3339(job.started_at),
        "ended_at": rfc3339(job.ended_at),
        "files": job.counters.files,
        "directories": job.counters.directories,
        "bytes": job.counters.bytes,
        "uploaded_bytes": job.counters.uploaded_bytes,
        "downloaded_bytes": job.counters.downloaded_bytes,
        "error": job.error_message or None,
    }


def _is_ok(status: int) -> bool:
    return status in (common_pb2.JOB_STATUS_SUCCESS, common_pb2.JOB_STATUS_WARNING)


def wait_for_job(client: AgentClient, job: common_pb2.Job, *, show: bool) -> common_pb2.Job:
    """Follow the job's events until it ends, drawing progress on a terminal."""
    last = job
    started = time.monotonic()
    for event in client.api.WatchJobs(agent_api_pb2.WatchJobsRequest(job_id=job.job_id)):
        last = event.job
        if show:
            for entry in event.log:
                sys.stderr.write("\r\x1b[K" + entry.message + "\n")
            p = last.progress
            elapsed = max(time.monotonic() - started, 1e-3)
            line = (
                f"{p.items_done} files, {_size(p.bytes_done)} "
                f"({_size(int(p.bytes_done / elapsed))}/s) {p.current_path[-60:]}"
            )
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
        if event.ended:
            break
    if show:
        sys.stderr.write("\r\x1b[K")
    return last


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"


def finish_job(client: AgentClient, job: common_pb2.Job, args: argparse.Namespace) -> None:
    if args.wait:
        job = wait_for_job(client, job, show=sys.stderr.isatty() and not args.json)
    if args.json:
        print_json(job_json(job))
    else:
        doc = job_json(job)
        print(
            f"job {doc['job_id']}: {doc['status']}"
            + (f", snapshot {doc['snapshot_id']}" if doc["snapshot_id"] else "")
            + (f" ({doc['error']})" if doc["error"] else "")
        )
    if args.wait and not _is_ok(job.status):
        raise CliError(
            f"the job ended with status {job_json(job)['status']}"
            + (f": {job.error_message}" if job.error_message else "")
        )


def cmd_backup(client: AgentClient, args: argparse.Namespace) -> None:
    options = common_pb2.BackupOptions(
        bandwidth_limit_bps=args.bandwidth_limit or 0,
        stop_after_seconds=args.stop_after or 0,
        tags=args.tag,
    )
    job = client.api.StartBackup(
        agent_api_pb2.StartBackupRequest(item_id=args.item, vault_id=args.vault, options=options),
        timeout=60,
    )
    finish_job(client, job, args)


def snapshot_json(s: common_pb2.SnapshotSummary) -> dict[str, Any]:
    return {
        "snapshot_id": s.snapshot_id,
        "item_id": s.item_id,
        "item_name": s.item_name or None,
        "device_id": s.device_id,
        "time": rfc3339(s.time),
        "files": s.files,
        "bytes": s.bytes,
        "paths": list(s.paths),
        "unknown_item": s.unknown_item,
        "tags": list(s.tags),
    }


def cmd_snapshots(client: AgentClient, args: argparse.Namespace) -> None:
    reply = client.api.ListSnapshots(
        agent_api_pb2.ListLocalSnapshotsRequest(
            vault_id=args.vault,
            item_id=args.item or "",
            all_devices=args.all_devices,
            unknown_items=args.unknown,
            tags=args.tag,
        ),
        timeout=300,
    )
    rows = [snapshot_json(s) for s in reply.snapshots]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            row["tags"] = ",".join(row["tags"]) or None
        print_table(rows, ["snapshot_id", "item_name", "time", "files", "bytes", "tags"])


NODE_NAMES = {
    common_pb2.NODE_TYPE_FILE: "file",
    common_pb2.NODE_TYPE_DIRECTORY: "dir",
    common_pb2.NODE_TYPE_SYMLINK: "symlink",
    common_pb2.NODE_TYPE_FIFO: "fifo",
    common_pb2.NODE_TYPE_CHAR_DEVICE: "chardev",
    common_pb2.NODE_TYPE_BLOCK_DEVICE: "blockdev",
    common_pb2.NODE_TYPE_SOCKET: "socket",
}


def entry_json(e: common_pb2.SnapshotEntry) -> dict[str, Any]:
    return {
        "path": e.path,
        "type": NODE_NAMES.get(e.type, "unknown"),
        "size": e.size,
        "mode": oct(e.mode & 0o7777),
        "mtime": rfc3339(e.mtime),
        "link_target": e.link_target or None,
        "snapshot_id": e.snapshot_id or None,
    }


def cmd_ls(client: AgentClient, args: argparse.Namespace) -> None:
    reply = client.api.ListDir(
        agent_api_pb2.ListDirRequest(
            vault_id=args.vault,
            snapshot_id=args.snapshot,
            path=args.path or "/",
            recursive=args.recursive,
            item_id=args.item or "",
            tags=args.tag,
        ),
        timeout=300,
    )
    rows = [entry_json(e) for e in reply.entries]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["type", "mode", "size", "mtime", "path"])


def _time_arg(text: str | None) -> Timestamp | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise CliError(f"a time is ISO 8601 (2026-01-31T12:00:00Z), not {text!r}") from e
    ts = Timestamp()
    ts.FromDatetime(when if when.tzinfo else when.astimezone())
    return ts


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*")
_UNITS = {
    **{u: 1 for u in ("", "b")},
    **{
        u: 1024**p
        for p, us in enumerate((("k", "kib"), ("m", "mib"), ("g", "gib"), ("t", "tib")), 1)
        for u in us
    },
    **{u: 1000**p for p, u in enumerate(("kb", "mb", "gb", "tb"), 1)},
}


def size_arg(text: str) -> int:
    """A size in bytes: a number with an optional unit. K, M, G, T and KiB…TiB are
    powers of 1024; kB, MB, GB, TB powers of 1000 (``10M``, ``1.5GiB``, ``0``)."""
    match = _SIZE.fullmatch(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (examples: 0, 4096, 10M, 1.5GiB, 2GB)"
        )
    return (
        int(float(match.group(1)) * unit) if "." in match.group(1) else int(match.group(1)) * unit
    )


def cmd_find(client: AgentClient, args: argparse.Namespace) -> None:
    by_path = "/" in args.pattern and not args.regex
    query = common_pb2.FindQuery(
        name_glob=args.pattern if not (args.regex or by_path) else "",
        path_glob=args.pattern if by_path else "",
        name_regex=args.pattern if args.regex else "",
        min_size=args.min_size or 0,
        max_size=args.max_size or 0,
        has_min_size=args.min_size is not None,
        has_max_size=args.max_size is not None,
        limit=args.limit or 0,
    )
    after, before = _time_arg(args.newer), _time_arg(args.older)
    if after is not None:
        query.modified_after.CopyFrom(after)
    if before is not None:
        query.modified_before.CopyFrom(before)
    reply = client.api.Find(
        agent_api_pb2.FindRequest(
            vault_id=args.vault,
            snapshot_ids=args.snapshot or [],
            query=query,
            item_id=args.item or "",
            tags=args.tag,
        ),
        timeout=600,
    )
    rows = [entry_json(e) for e in reply.entries]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["snapshot_id", "type", "size", "mtime", "path"])
        if reply.truncated:
            print("(more matches exist; narrow the search or raise --limit)")


ARCHIVES = {"tar": 0, "tar.gz": 1, "zip": 2, "sqfs": 3, "tar.zst": 4}


def restore_options(args: argparse.Namespace) -> common_pb2.RestoreOptions:
    """The one destination the parser allowed, with the options that fit it."""
    options = common_pb2.RestoreOptions(
        paths=args.path or [],
        allow_partial=args.allow_partial,
        restore_privileged=args.restore_privileged,
    )
    if (args.per_file or args.as_archive) and not args.program:
        raise CliError("--per-file and --as-archive go with --program CMD")
    if args.output and not args.archive:
        raise CliError("--output goes with --archive FORMAT")
    writes_files = bool(args.to or args.original_paths)
    if args.overwrite_if_newer and not writes_files:
        raise CliError("--overwrite-if-newer goes with --to DIR or --original-paths")
    if args.overwrite and not (writes_files or args.archive):
        raise CliError("--overwrite goes with --to DIR, --original-paths or --archive")
    if args.overwrite:
        options.overwrite = common_pb2.OVERWRITE_MODE_OVERWRITE
    elif args.overwrite_if_newer:
        options.overwrite = common_pb2.OVERWRITE_MODE_IF_NEWER
    if writes_files:
        options.type = common_pb2.RESTORE_TYPE_FILES
        options.destination = str(Path(args.to).absolute()) if args.to else ""
        options.original_paths = args.original_paths
    elif args.simulate:
        options.type = common_pb2.RESTORE_TYPE_SIMULATE
    elif args.program:
        options.type = (
            common_pb2.RESTORE_TYPE_PROGRAM_ARCHIVE
            if args.as_archive
            else common_pb2.RESTORE_TYPE_PROGRAM_PER_FILE
        )
        options.program_command = args.program
    else:
        if not args.output:
            raise CliError("--archive needs --output FILE")
        options.type = common_pb2.RESTORE_TYPE_ARCHIVE_FILE
        options.archive_format = ARCHIVES[args.archive]  # type: ignore[assignment]
        options.destination = str(Path(args.output).absolute())
    return options


def cmd_restore(client: AgentClient, args: argparse.Namespace) -> None:
    options = restore_options(args)
    job = client.api.StartRestore(
        agent_api_pb2.StartRestoreRequest(
            vault_id=args.vault, snapshot_id=args.snapshot, item_id=args.item or "", options=options
        ),
        timeout=120,
    )
    finish_job(client, job, args)


def vault_job(classification: int) -> Callable[[AgentClient, argparse.Namespace], None]:
    def run(client: AgentClient, args: argparse.Namespace) -> None:
        job = client.api.StartVaultJob(
            agent_api_pb2.StartVaultJobRequest(
                vault_id=args.vault,
                classification=classification,  # type: ignore[arg-type]
                snapshot_ids=getattr(args, "snapshots", None) or [],
                read_data=getattr(args, "read_data", False),
                tags=getattr(args, "tag", None) or [],
                password=read_password() if getattr(args, "password_stdin", False) else "",
            ),
            timeout=60,
        )
        finish_job(client, job, args)

    return run


def cmd_retention(client: AgentClient, args: argparse.Namespace) -> None:
    if args.dry_run:
        cmd_retention_dry_run(client, args)
    else:
        vault_job(common_pb2.JOB_CLASSIFICATION_RETENTION)(client, args)


_REMOVED_LOCK = "removed lock "  # the unlock job's log line per removed lock


def cmd_vault_unlock(client: AgentClient, args: argparse.Namespace) -> None:
    """Remove stale locks, or with --force every lock (after a confirmation on a
    terminal unless --yes); with --wait, list what was removed."""
    if args.force and not args.yes and sys.stdin.isatty():
        answer = input(
            f"Remove EVERY lock of vault {args.vault}? Jobs still running on any device "
            "will stop without committing. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            raise CliError("nothing was removed")
    job = client.api.StartVaultJob(
        agent_api_pb2.StartVaultJobRequest(
            vault_id=args.vault,
            classification=common_pb2.JOB_CLASSIFICATION_UNLOCK,
            remove_all_locks=args.force,
        ),
        timeout=60,
    )
    if args.wait:
        job = wait_for_job(client, job, show=sys.stderr.isatty() and not args.json)
    doc = job_json(job)
    removed: list[dict[str, str]] = []
    if args.wait:
        log = client.api.JobLog(agent_api_pb2.JobLogRequest(job_id=job.job_id), timeout=60)
        for entry in log.entries:
            if entry.message.startswith(_REMOVED_LOCK):
                key, _, detail = entry.message.removeprefix(_REMOVED_LOCK).partition(" ")
                removed.append({"key": key, "detail": detail})
        doc["removed_locks"] = removed
    if args.json:
        print_json(doc)
    else:
        print(
            f"job {doc['job_id']}: {doc['status']}" + (f" ({doc['error']})" if doc["error"] else "")
        )
        for lock in removed:
            print(f"removed {lock['key']} {lock['detail']}")
    if args.wait and not _is_ok(job.status):
        raise CliError(
            f"the job ended with status {doc['status']}"
            + (f": {job.error_message}" if job.error_message else "")
        )


def cmd_import(client: AgentClient, args: argparse.Namespace) -> None:
    if args.list or not args.source_id:
        reply = client.api.ListImportSources(agent_api_pb2.ListImportSourcesRequest(), timeout=60)
        rows = [
            {
                "source_id": s.source_id,
                "product": s.product,
                "path": s.path or None,
                "description": s.description,
            }
            for s in reply.sources
        ]
        if args.json:
            print_json(rows)
        else:
            print_table(rows, ["source_id", "product", "description"])
        return
    if args.dry_run:
        cmd_import_preview(client, args)
        return
    job = client.api.StartVaultJob(
        agent_api_pb2.StartVaultJobRequest(
            classification=common_pb2.JOB_CLASSIFICATION_IMPORT,
            import_source_id=args.source_id,
        ),
        timeout=60,
    )
    args.wait = True
    finish_job(client, job, args)


def cmd_history(client: AgentClient, args: argparse.Namespace) -> None:
    from comet.agent.jobs.codes import parse_classification, parse_status

    try:
        statuses = [common_pb2.JobStatus.ValueType(parse_status(s)) for s in args.status or []]
        kinds = [
            common_pb2.JobClassification.ValueType(parse_classification(c))
            for c in args.classification or []
        ]
    except (KeyError, ValueError) as e:
        raise CliError(f"unknown status or classification: {e}") from e
    reply = client.api.History(
        agent_api_pb2.HistoryRequest(
            statuses=statuses,
            classifications=kinds,
            item_id=args.item or "",
            vault_id=args.vault or "",
            device_id=args.device or "",
            all_devices=args.all_devices,
        ),
        timeout=60,
    )
    rows = [job_json(j) for j in reply.jobs]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["job_id", "classification", "status", "started_at", "files", "bytes"])


def cmd_job_cancel(client: AgentClient, args: argparse.Namespace) -> None:
    job = client.api.CancelJob(agent_api_pb2.CancelLocalJobRequest(job_id=args.job_id), timeout=60)
    if args.wait:
        job = wait_for_job(client, job, show=False)
    if args.json:
        print_json(job_json(job))
    else:
        print(f"job {job.job_id}: {job_json(job)['status']}")


def cmd_job_log(client: AgentClient, args: argparse.Namespace) -> None:
    reply = client.api.JobLog(agent_api_pb2.JobLogRequest(job_id=args.job_id), timeout=60)
    severity = {1: "D", 2: "I", 3: "W", 4: "E"}
    if args.json:
        print_json(
            {
                "job": job_json(reply.job),
                "entries": [
                    {
                        "time": rfc3339(e.time),
                        "severity": severity.get(e.severity, "I"),
                        "message": e.message,
                    }
                    for e in reply.entries
                ],
            }
        )
        return
    for e in reply.entries:
        print(f"{rfc3339(e.time)} {severity.get(e.severity, 'I')} {e.message}")


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


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (the CLI contract); ``--help`` shows usage.
    Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROG, description="Control the local Comet agent.")
    parser.add_argument("--socket", type=Path, default=None, help="the agent's unix socket")
    sub = parser.add_subparsers(dest="command", required=True)

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

    item = sub.add_parser("item", help="Protected Items").add_subparsers(dest="sub", required=True)
    iadd = item.add_parser("add", help="add a Protected Item (prints its id)")
    iadd.add_argument("name")
    iadd.add_argument("--type", choices=["files", "program"], required=True)
    iadd.add_argument("--include", action="append")
    iadd.add_argument("--exclude", action="append", help="glob")
    iadd.add_argument("--exclude-regex", action="append")
    iadd.add_argument("--command", help="program: the command whose output is saved")
    iadd.add_argument("--save-as", help="program: the file name to save the output as")
    iadd.add_argument("--pre", action="append", help="command to run before each job")
    iadd.add_argument("--post", action="append", help="command to run after each job")
    iadd.add_argument("--rescan-unchanged", action="store_true")
    iadd.add_argument("--json", action="store_true")
    iadd.set_defaults(func=cmd_item_add)
    idel = item.add_parser("delete", help="delete a Protected Item (its snapshots stay)")
    idel.add_argument("item", help="item id or name")
    idel.set_defaults(func=cmd_item_delete)
    ilist = item.add_parser("list", help="list Protected Items")
    ilist.add_argument("--json", action="store_true")
    ilist.set_defaults(func=cmd_item_list)

    schedule = sub.add_parser("schedule", help="schedules").add_subparsers(
        dest="sub", required=True
    )
    sadd = schedule.add_parser("add", help="run an item's backup to a vault on a schedule")
    sadd.add_argument("--item", required=True)
    sadd.add_argument("--vault", required=True)
    when = sadd.add_mutually_exclusive_group()
    when.add_argument("--daily", metavar="HH:MM")
    when.add_argument("--hourly", metavar="MIN", type=int, nargs="?", const=0)
    when.add_argument("--weekly", nargs=2, metavar=("DAY", "HH:MM"))
    when.add_argument("--monthly", nargs=2, metavar=("DAY_OF_MONTH", "HH:MM"))
    when.add_argument("--every", metavar="SECONDS", type=int)
    sadd.add_argument("--skip-if-running", action="store_true")
    sadd.add_argument("--stop-after", type=int, metavar="SECONDS")
    sadd.add_argument("--retries", type=int)
    sadd.add_argument("--retry-delay", type=int, metavar="SECONDS")
    sadd.add_argument("--random-delay", type=int, metavar="SECONDS")
    sadd.add_argument("--bandwidth-limit", type=int, metavar="BYTES_PER_S")
    sadd.add_argument("--run-at-boot", action="store_true")
    sadd.add_argument("--run-at-boot-if-missed", action="store_true")
    sadd.add_argument("--json", action="store_true")
    sadd.set_defaults(func=cmd_schedule_add)
    slist = schedule.add_parser("list", help="list schedules")
    slist.add_argument("--json", action="store_true")
    slist.set_defaults(func=cmd_schedule_list)

    backup = sub.add_parser("backup", help="back up a Protected Item now")
    backup.add_argument("item", help="item id or name")
    backup.add_argument("--vault", required=True, help="vault id or name")
    backup.add_argument("--wait", action="store_true", help="wait for the job to end")
    backup.add_argument(
        "--bandwidth-limit", type=int, metavar="BYTES_PER_S", help="cap upload speed for this job"
    )
    backup.add_argument(
        "--stop-after", type=int, metavar="SECONDS", help="cancel the job after this long"
    )
    backup.add_argument(
        "--tag", action="append", default=[], help="store this tag in the snapshot (repeatable)"
    )
    backup.add_argument("--json", action="store_true")
    backup.set_defaults(func=cmd_backup)

    snaps = sub.add_parser("snapshots", help="list snapshots in a vault")
    snaps.add_argument("--vault", required=True)
    snaps.add_argument("--item")
    snaps.add_argument("--all-devices", action="store_true")
    snaps.add_argument("--unknown", action="store_true", help="only snapshots of deleted items")
    snaps.add_argument("--tag", action="append", default=[], help="only snapshots with this tag")
    snaps.add_argument("--json", action="store_true")
    snaps.set_defaults(func=cmd_snapshots)

    ls = sub.add_parser("ls", help="list a folder of a snapshot")
    ls.add_argument("snapshot", help="snapshot id, prefix, latest or latest~N")
    ls.add_argument("path", nargs="?", default="/")
    ls.add_argument("--vault", required=True)
    ls.add_argument("-R", "--recursive", action="store_true", help="everything below PATH")
    add_snapshot_filters(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_ls)

    find = sub.add_parser("find", help="search snapshots by name, size and time")
    find.add_argument(
        "pattern",
        help="a name glob; with a '/' a glob on the whole path ('docs/*.txt',"
        " '/home/*/**.pdf'); a regex on names with --regex",
    )
    find.add_argument("--vault", required=True)
    find.add_argument(
        "--snapshot", action="append", help="only these: ids, prefixes, latest (default: all)"
    )
    find.add_argument("--item", help="only this Protected Item's snapshots (id or name)")
    find.add_argument("--tag", action="append", default=[], help="only snapshots with this tag")
    find.add_argument("--regex", action="store_true")
    find.add_argument("--min-size", type=size_arg, help="at least this size: 0, 512, 10M, 1.5GiB")
    find.add_argument("--max-size", type=size_arg, help="at most this size (0: empty files)")
    find.add_argument("--newer", help="modified after this time (ISO 8601)")
    find.add_argument("--older", help="modified before this time (ISO 8601)")
    find.add_argument("--limit", type=int)
    find.add_argument("--json", action="store_true")
    find.set_defaults(func=cmd_find)

    restore = sub.add_parser("restore", help="restore a snapshot")
    restore.add_argument("snapshot", help="snapshot id (or prefix), or 'latest' with --item")
    restore.add_argument("--vault", required=True)
    restore.add_argument("--item")
    # Exactly one destination: a second one is refused here, before any job starts.
    where = restore.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", help="restore under this directory")
    where.add_argument("--original-paths", action="store_true")
    where.add_argument("--simulate", action="store_true", help="read and verify, write nothing")
    where.add_argument("--program", help="command receiving the data on stdin")
    where.add_argument("--archive", choices=sorted(ARCHIVES), help="write one archive file")
    shape = restore.add_mutually_exclusive_group()
    shape.add_argument("--per-file", action="store_true", help="run the program per file")
    shape.add_argument("--as-archive", action="store_true", help="one tar stream on stdin")
    restore.add_argument("--output", help="archive file to write")
    restore.add_argument(
        "--restore-privileged",
        action="store_true",
        help="also restore setuid/setgid bits, security.* attributes and device nodes",
    )
    restore.add_argument("--path", action="append", help="restore only this path (repeatable)")
    mode = restore.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true")
    mode.add_argument("--overwrite-if-newer", action="store_true")
    mode.add_argument("--skip-existing", action="store_true", help="the default")
    restore.add_argument("--allow-partial", action="store_true")
    restore.add_argument("--wait", action="store_true")
    restore.add_argument("--json", action="store_true")
    restore.set_defaults(func=cmd_restore, precheck=restore_options)

    history = sub.add_parser("history", help="job history of this device")
    history.add_argument("--status", action="append")
    history.add_argument("--classification", action="append")
    history.add_argument("--item")
    history.add_argument("--vault")
    history.add_argument("--device")
    history.add_argument("--all-devices", action="store_true")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)

    for name, code, text in (
        (
            "delete-snapshot",
            common_pb2.JOB_CLASSIFICATION_DELETE_SNAPSHOT,
            "delete snapshots, then remove data nothing else uses",
        ),
        ("retention", common_pb2.JOB_CLASSIFICATION_RETENTION, "run a retention pass now"),
        ("reindex", common_pb2.JOB_CLASSIFICATION_REINDEX, "rebuild indexes from the packs"),
        ("verify", common_pb2.JOB_CLASSIFICATION_DEEP_VERIFY, "check the vault's integrity"),
        ("unlock", common_pb2.JOB_CLASSIFICATION_UNLOCK, "remove stale locks"),
        ("remeasure", common_pb2.JOB_CLASSIFICATION_REMEASURE, "recompute the vault size"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--vault", required=True)
        if name == "delete-snapshot":
            p.add_argument("snapshots", nargs="+", metavar="SNAPSHOT")
        if name in ("delete-snapshot", "retention"):
            p.add_argument(
                "--password-stdin",
                action="store_true",
                help="immutable Comet Server vault: re-enter your password so the server"
                " grants deletes (of data past its protection only)",
            )
        if name == "retention":
            p.add_argument(
                "--dry-run",
                action="store_true",
                help="list what would be forgotten and which rule keeps each kept snapshot",
            )
            p.add_argument(
                "--tag", action="append", default=[], help="judge only snapshots with this tag"
            )
        if name == "verify":
            p.add_argument(
                "--read-data", action="store_true", help="download, decrypt and hash every blob"
            )
        p.add_argument("--wait", action="store_true")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=vault_job(code))
        if name == "retention":
            p.set_defaults(func=cmd_retention)
        if name == "unlock":
            p.add_argument(
                "--force",
                action="store_true",
                help="remove every lock, also those of running jobs (they then stop)",
            )
            p.add_argument("--yes", action="store_true", help="do not ask to confirm --force")
            p.set_defaults(func=cmd_vault_unlock)

    imp = sub.add_parser("import", help="import settings from other backup products")
    imp.add_argument("source_id", nargs="?", help="a source from --list")
    imp.add_argument("--list", action="store_true", help="list what can be imported")
    imp.add_argument(
        "--dry-run", action="store_true", help="print what would be created; change nothing"
    )
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)

    add_mount_commands(sub)
    add_totp_commands(sub)
    add_snapshot_tool_commands(sub)
    add_profile_edit_commands({"vault": vault, "item": item, "schedule": schedule})

    job = sub.add_parser("job", help="jobs").add_subparsers(dest="sub", required=True)
    jlog = job.add_parser("log", help="show a job's log")
    jlog.add_argument("job_id")
    jlog.add_argument("--json", action="store_true")
    jlog.set_defaults(func=cmd_job_log)
    jcancel = job.add_parser("cancel", help="cancel a running job (it stops within seconds)")
    jcancel.add_argument("job_id")
    jcancel.add_argument("--wait", action="store_true", help="wait until it has stopped")
    jcancel.add_argument("--json", action="store_true")
    jcancel.set_defaults(func=cmd_job_cancel)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        precheck = getattr(args, "precheck", None)
        if precheck is not None:  # refusals that need no agent come first
            precheck(args)
        client = AgentClient(args.socket or default_socket_path())
        args.func(client, args)
    except grpc.RpcError as e:
        return fail(PROG, rpc_error_message(e))
    except CliError as e:
        return fail(PROG, str(e))
    except OSError as e:
        return fail(PROG, f"{e.strerror}: {e.filename}" if e.filename else str(e))
    except Exception as e:
        from comet.agent.errors import AgentError

        if isinstance(e, AgentError):
            return fail(PROG, str(e))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
