"""``comet-admin dispatch``: commands sent down a connected device's live connection."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from comet.agent.output import print_json, rfc3339
from comet.server.admin_jobs import job_json
from comet.server.admin_names import AdminNames
from comet.server.admin_session import Admin, AdminCliError, load_session
from comet.v1 import admin_pb2, common_pb2, control_pb2

# A waited-for job may run for hours; the server holds the call until it ends.
WAIT_SECONDS = 24 * 3600
REPLY_SECONDS = 120
GOOD_STATUSES = (common_pb2.JOB_STATUS_SUCCESS, common_pb2.JOB_STATUS_WARNING)

Builder = Callable[[argparse.Namespace], control_pb2.Command]


def send(device_id: str, command: control_pb2.Command, *, wait: bool) -> control_pb2.CommandReply:
    admin = Admin(load_session())
    timeout = WAIT_SECONDS if wait else REPLY_SECONDS
    reply: control_pb2.CommandReply = admin.stub.Dispatch(
        admin_pb2.DispatchRequest(
            device_id=device_id, command=command, wait=wait, timeout_seconds=timeout
        ),
        metadata=admin.metadata,
        timeout=timeout + 30,
    )
    if reply.error:
        raise AdminCliError(f"device {device_id}: {reply.error}")
    return reply


def _print_reply(args: argparse.Namespace, reply: control_pb2.CommandReply, action: str) -> None:
    result = reply.WhichOneof("result")
    if result == "job_started":
        started = reply.job_started
        if started.HasField("job"):
            document = job_json(started.job)
            if args.json:
                print_json(document)
            else:
                snapshot = document["snapshot_id"]
                print(
                    f"job {document['job_id']} ended: {document['status']}"
                    + (f", snapshot {snapshot}" if snapshot else "")
                )
            if started.job.status not in GOOD_STATUSES:
                raise AdminCliError(
                    f"job {started.job.job_id} ended with status {document['status']}"
                    + (f": {started.job.error_message}" if started.job.error_message else "")
                )
            return
        if args.json:
            print_json({"device_id": args.device, "job_id": started.job_id})
        else:
            print(f"job {started.job_id} started on device {args.device}")
    elif result == "snapshots":
        rows = [
            {
                "snapshot_id": s.snapshot_id,
                "item_id": s.item_id,
                "item_name": s.item_name or None,
                "device_id": s.device_id,
                "time": rfc3339(s.time),
                "files": s.files,
                "bytes": s.bytes,
                "tags": list(s.tags),
            }
            for s in reply.snapshots.snapshots
        ]
        if args.json:
            print_json(rows)
        else:
            for row in rows:
                print(f"{row['snapshot_id']}  {row['time']}  {row['item_id']}  {row['bytes']}")
    elif args.json:
        print_json({"device_id": args.device, "result": result or "done"})
    else:
        print(f"{action}: done on device {args.device}")


def runner(builder: Builder, action: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        wait = bool(getattr(args, "wait", False))
        command = builder(args)  # the arguments are checked before any server call
        # A device name is as good as its id; items, vaults and snapshots (names,
        # prefixes, 'latest') are resolved by the agent itself.
        args.device = AdminNames(Admin(load_session())).device_id(args.device)
        reply = send(args.device, command, wait=wait)
        _print_reply(args, reply, action)

    return run


# ------------------------------------------------------------------------ command builders


def backup(args: argparse.Namespace) -> control_pb2.Command:
    if not args.schedule and not (args.item and args.vault):
        raise AdminCliError("give --item and --vault, or --schedule")
    return control_pb2.Command(
        run_backup=control_pb2.RunBackupCommand(
            schedule_id=args.schedule or "",
            item_id=args.item or "",
            vault_id=args.vault or "",
            options=common_pb2.BackupOptions(
                stop_after_seconds=args.stop_after, skip_if_running=args.skip_if_running
            ),
        )
    )


_OVERWRITE = {
    "overwrite": common_pb2.OVERWRITE_MODE_OVERWRITE,
    "overwrite_if_newer": common_pb2.OVERWRITE_MODE_IF_NEWER,
    "skip_existing": common_pb2.OVERWRITE_MODE_SKIP_EXISTING,
}


def restore(args: argparse.Namespace) -> control_pb2.Command:
    options = common_pb2.RestoreOptions(
        paths=args.path,
        allow_partial=args.allow_partial,
        overwrite=_OVERWRITE[args.overwrite],
        restore_privileged=args.restore_privileged,
    )
    # The parser allows exactly one destination; the agent checks again.
    if args.simulate:
        if args.overwrite != "skip_existing":
            raise AdminCliError("a simulated restore overwrites nothing: drop --overwrite")
        options.type = common_pb2.RESTORE_TYPE_SIMULATE
    elif args.original_paths:
        options.original_paths = True
    elif args.to:
        options.destination = args.to
    else:
        raise AdminCliError("give --to DIR, --original-paths or --simulate")
    return control_pb2.Command(
        run_restore=control_pb2.RunRestoreCommand(
            vault_id=args.vault, snapshot_id=args.snapshot, item_id=args.item or "", options=options
        )
    )


def vault_job(action: str) -> Builder:
    def build(args: argparse.Namespace) -> control_pb2.Command:
        command = control_pb2.Command()
        getattr(command, action).CopyFrom(
            control_pb2.VaultJobCommand(vault_id=args.vault, force=getattr(args, "force", False))
        )
        return command

    return build


def verify(args: argparse.Namespace) -> control_pb2.Command:
    return control_pb2.Command(
        verify=control_pb2.VerifyCommand(vault_id=args.vault, read_data=args.read_data)
    )


def delete_snapshot(args: argparse.Namespace) -> control_pb2.Command:
    return control_pb2.Command(
        delete_snapshots=control_pb2.DeleteSnapshotsCommand(
            vault_id=args.vault, snapshot_ids=args.snapshot
        )
    )


def snapshots(args: argparse.Namespace) -> control_pb2.Command:
    return control_pb2.Command(
        list_snapshots=control_pb2.ListSnapshotsCommand(
            vault_id=args.vault, item_id=args.item or ""
        )
    )


def cancel(args: argparse.Namespace) -> control_pb2.Command:
    return control_pb2.Command(cancel_job=control_pb2.CancelJobCommand(job_id=args.job_id))


def simple(action: str) -> Builder:
    def build(args: argparse.Namespace) -> control_pb2.Command:
        command = control_pb2.Command()
        getattr(command, action).SetInParent()
        return command

    return build


# ------------------------------------------------------------------------ parser


def _common(p: argparse.ArgumentParser, *, job: bool) -> None:
    p.add_argument("--device", required=True, help="the connected device to run it on")
    p.add_argument("--json", action="store_true")
    if job:
        p.add_argument("--wait", action="store_true", help="wait until the job has ended")


def add_parsers(sub: Any) -> None:
    dispatch = sub.add_parser("dispatch", help="send a command to a connected device")
    dsub = dispatch.add_subparsers(dest="sub", required=True)

    p = dsub.add_parser("backup", help="run a backup of an item to a vault")
    _common(p, job=True)
    p.add_argument("--item")
    p.add_argument("--vault")
    p.add_argument("--schedule", help="run this schedule's item and vault instead")
    p.add_argument("--stop-after", type=int, default=0, help="cancel after SECONDS (0 = never)")
    p.add_argument("--skip-if-running", action="store_true")
    p.set_defaults(func=runner(backup, "backup"))

    p = dsub.add_parser("restore", help="restore a snapshot on the device")
    _common(p, job=True)
    p.add_argument("--vault", required=True)
    p.add_argument("--snapshot", required=True, help="a snapshot id, or 'latest' with --item")
    p.add_argument("--item")
    where = p.add_mutually_exclusive_group()  # none given: a clear error in restore()
    where.add_argument("--to", help="restore into this directory")
    where.add_argument("--original-paths", action="store_true")
    where.add_argument("--simulate", action="store_true", help="read and verify, write nothing")
    p.add_argument("--path", action="append", default=[], help="restore only this path")
    p.add_argument(
        "--restore-privileged",
        action="store_true",
        help="also restore setuid/setgid bits, security.* attributes and device nodes",
    )
    p.add_argument("--allow-partial", action="store_true")
    mode = p.add_mutually_exclusive_group()
    for flag in ("overwrite", "overwrite-if-newer", "skip-existing"):
        mode.add_argument(
            f"--{flag}", dest="overwrite", action="store_const", const=flag.replace("-", "_")
        )
    p.set_defaults(func=runner(restore, "restore"), overwrite="skip_existing")

    for name, action, text in (
        ("retention", "apply_retention", "apply the retention rules to a vault"),
        ("reindex", "reindex", "rebuild a vault's indexes from its packs"),
        ("unlock", "unlock", "remove stale locks from a vault"),
    ):
        p = dsub.add_parser(name, help=text)
        _common(p, job=True)
        p.add_argument("--vault", required=True)
        if name == "unlock":
            p.add_argument(
                "--force",
                action="store_true",
                help="remove every lock, also those of running jobs (they then stop)",
            )
        p.set_defaults(func=runner(vault_job(action), name))

    p = dsub.add_parser("verify", help="deep-verify a vault")
    _common(p, job=True)
    p.add_argument("--vault", required=True)
    p.add_argument("--read-data", action="store_true", help="read and decrypt every pack")
    p.set_defaults(func=runner(verify, "verify"))

    p = dsub.add_parser("delete-snapshot", help="delete snapshots from a vault")
    _common(p, job=True)
    p.add_argument("--vault", required=True)
    p.add_argument("snapshot", nargs="+")
    p.set_defaults(func=runner(delete_snapshot, "delete-snapshot"))

    p = dsub.add_parser("snapshots", help="list a vault's snapshots, as the device sees them")
    _common(p, job=False)
    p.add_argument("--vault", required=True)
    p.add_argument("--item")
    p.set_defaults(func=runner(snapshots, "snapshots"))

    p = dsub.add_parser("cancel", help="cancel a running job")
    _common(p, job=False)
    p.add_argument("job_id")
    p.set_defaults(func=runner(cancel, "cancel"))

    for name, action, text in (
        ("refetch", "refetch_profile", "make the device fetch its profile again"),
        ("drop", "drop_connection", "drop the live connection (the device reconnects)"),
        ("disconnect", "disconnect", "log the device's agent out; it stops reconnecting"),
    ):
        p = dsub.add_parser(name, help=text)
        _common(p, job=False)
        p.set_defaults(func=runner(simple(action), name))
