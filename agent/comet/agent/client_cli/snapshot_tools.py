"""``comet diff``, ``comet dump``, ``comet stats`` and ``comet retention --dry-run``:
the snapshot toolkit on the command line. Snapshots are named by id, unique id prefix,
``latest`` or ``latest~N``, narrowed by ``--item`` and ``--tag``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from comet.agent.client_cli.common import AgentClient, CliError
from comet.agent.output import human_size, print_json, print_table
from comet.v1 import agent_api_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands

_NODE = {0: None, 1: "file", 2: "dir", 3: "symlink", 4: "fifo", 5: "chardev", 6: "blockdev"}
_MARK = {"added": "+", "removed": "-", "modified": "M", "metadata": "U"}


def add_snapshot_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--item", help="narrows 'latest' to this Protected Item (id or name)")
    parser.add_argument(
        "--tag", action="append", default=[], help="narrows 'latest' to snapshots with this tag"
    )


# ---------------------------------------------------------------------------- diff


def diff_json(reply: agent_api_pb2.DiffReply) -> dict[str, Any]:
    return {
        "old_snapshot_id": reply.old_snapshot_id,
        "new_snapshot_id": reply.new_snapshot_id,
        "changes": [
            {
                "path": e.path,
                "change": e.change,
                "old_type": _NODE.get(e.old_type),
                "new_type": _NODE.get(e.new_type),
                "old_size": e.old_size,
                "new_size": e.new_size,
            }
            for e in reply.entries
        ],
        "added": reply.added,
        "removed": reply.removed,
        "modified": reply.modified,
        "metadata": reply.metadata,
        "added_bytes": reply.added_bytes,
        "removed_bytes": reply.removed_bytes,
    }


def cmd_diff(client: AgentClient, args: argparse.Namespace) -> None:
    reply = client.api.Diff(
        agent_api_pb2.DiffRequest(
            vault_id=args.vault,
            old_snapshot=args.old,
            new_snapshot=args.new,
            item_id=args.item or "",
            tags=args.tag,
        ),
        timeout=600,
    )
    if args.json:
        print_json(diff_json(reply))
        return
    print(f"comparing snapshot {reply.old_snapshot_id[:12]} to {reply.new_snapshot_id[:12]}")
    for e in reply.entries:
        kind = _NODE.get(e.new_type or e.old_type) or "?"
        suffix = "/" if kind == "dir" else ""
        size = ""
        if e.change == "modified" and kind == "file":
            size = f"  ({human_size(e.old_size)} -> {human_size(e.new_size)})"
        elif kind == "file":
            size = f"  ({human_size(e.new_size or e.old_size)})"
        print(f"{_MARK.get(e.change, '?')}    {e.path}{suffix}{size}")
    print(
        f"\nadded {reply.added}, removed {reply.removed}, modified {reply.modified},"
        f" metadata only {reply.metadata}; {human_size(reply.added_bytes)} added,"
        f" {human_size(reply.removed_bytes)} removed"
    )


# ---------------------------------------------------------------------------- dump


def cmd_dump(client: AgentClient, args: argparse.Namespace) -> None:
    out = sys.stdout.buffer
    if out.isatty() and not args.force:
        raise CliError(
            "dump writes raw bytes; redirect it to a file or a pipe"
            " (comet dump … > FILE), or pass --force to print to the terminal"
        )
    stream = client.api.Dump(
        agent_api_pb2.DumpRequest(
            vault_id=args.vault,
            snapshot_id=args.snapshot,
            path=args.path,
            item_id=args.item or "",
            tags=args.tag,
        )
    )
    try:
        for chunk in stream:
            if chunk.data:
                out.write(chunk.data)
        out.flush()
    except BrokenPipeError:
        stream.cancel()  # the reader (head, less) has what it wanted: not an error
        # Python flushes stdout again at exit; point it at /dev/null so that flush
        # does not report the closed pipe either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# ---------------------------------------------------------------------------- stats


def _usage(t: agent_api_pb2.UsageTotals) -> dict[str, Any]:
    return {
        "snapshots": t.snapshots,
        "files": t.files,
        "restore_bytes": t.restore_bytes,
        "raw_bytes": t.raw_bytes,
        "stored_bytes": t.stored_bytes,
        "blobs": t.blobs,
        "dedup_ratio": round(t.restore_bytes / t.raw_bytes, 3) if t.raw_bytes else 1.0,
        "compression_ratio": round(t.raw_bytes / t.stored_bytes, 3) if t.stored_bytes else 1.0,
    }


def stats_json(reply: agent_api_pb2.StatsReply) -> dict[str, Any]:
    return {
        **_usage(reply.totals),
        "snapshot_ids": list(reply.snapshot_ids),
        "groups": [
            {
                "device_id": g.device_id,
                "item_id": g.item_id,
                "item_name": g.item_name or None,
                **_usage(g.totals),
            }
            for g in reply.groups
        ],
    }


def cmd_stats(client: AgentClient, args: argparse.Namespace) -> None:
    reply = client.api.Stats(
        agent_api_pb2.StatsRequest(
            vault_id=args.vault,
            snapshot_id=args.snapshot or "",
            item_id=args.item or "",
            tags=args.tag,
            all_devices=args.all_devices,
        ),
        timeout=3600,
    )
    doc = stats_json(reply)
    if args.json:
        print_json(doc)
        return
    print(f"snapshots:          {doc['snapshots']} ({doc['files']} files)")
    print(f"restore size:       {human_size(doc['restore_bytes'])}")
    print(f"unique data:        {human_size(doc['raw_bytes'])} (deduplicated)")
    print(f"stored size:        {human_size(doc['stored_bytes'])} (compressed, encrypted)")
    print(f"deduplication:      {doc['dedup_ratio']:.2f}x")
    print(f"compression:        {doc['compression_ratio']:.2f}x")
    if len(doc["groups"]) > 1 or args.all_devices:
        print()
        rows = [
            {
                "device_id": g["device_id"],
                "item": g["item_name"] or g["item_id"],
                "snapshots": g["snapshots"],
                "restore": human_size(g["restore_bytes"]),
                "stored": human_size(g["stored_bytes"]),
                "dedup": f"{g['dedup_ratio']:.2f}x",
            }
            for g in doc["groups"]
        ]
        print_table(rows, ["device_id", "item", "snapshots", "restore", "stored", "dedup"])


# ---------------------------------------------------------------------------- retention


def cmd_retention_dry_run(client: AgentClient, args: argparse.Namespace) -> None:
    """What a retention pass would forget, and which rules keep the rest."""
    from comet.agent.client_cli.browse import snapshot_json  # browse imports this module

    reply = client.api.PlanRetention(
        agent_api_pb2.PlanRetentionRequest(vault_id=args.vault, tags=args.tag), timeout=600
    )
    rows = [
        {**snapshot_json(v.snapshot), "keep": v.keep, "reasons": list(v.reasons)}
        for v in reply.verdicts
    ]
    if args.json:
        print_json(
            {
                "dry_run": True,
                "keep": [r for r in rows if r["keep"]],
                "forget": [r for r in rows if not r["keep"]],
            }
        )
        return
    table = [
        {
            "snapshot_id": r["snapshot_id"][:12],
            "item": r["item_name"] or r["item_id"],
            "time": r["time"],
            "verdict": "keep" if r["keep"] else "forget",
            "why": "; ".join(r["reasons"]) or "-",
        }
        for r in rows
    ]
    print_table(table, ["snapshot_id", "item", "time", "verdict", "why"])
    forget = sum(1 for r in rows if not r["keep"])
    print(f"\nwould forget {forget} and keep {len(rows) - forget} snapshots (nothing was changed)")


def register(sub: Subcommands) -> None:
    diff = sub.add_parser("diff", help="what changed between two snapshots")
    diff.add_argument("old", help="snapshot id, prefix, latest or latest~N")
    diff.add_argument("new", help="snapshot id, prefix, latest or latest~N")
    diff.add_argument("--vault", required=True, help="vault id or name")
    add_snapshot_filters(diff)
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(func=cmd_diff)

    dump = sub.add_parser(
        "dump", help="write a file of a snapshot to stdout (a folder as a tar stream)"
    )
    dump.add_argument("snapshot", help="snapshot id, prefix, latest or latest~N")
    dump.add_argument("path", help="absolute path in the snapshot (/ for all of it)")
    dump.add_argument("--vault", required=True, help="vault id or name")
    add_snapshot_filters(dump)
    dump.add_argument("--force", action="store_true", help="write to a terminal too")
    dump.set_defaults(func=cmd_dump)

    stats = sub.add_parser("stats", help="restore size, stored size and deduplication of snapshots")
    stats.add_argument("snapshot", nargs="?", help="one snapshot (default: all that match)")
    stats.add_argument("--vault", required=True, help="vault id or name")
    add_snapshot_filters(stats)
    stats.add_argument(
        "--all-devices", action="store_true", help="every device's snapshots, per device"
    )
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_stats)
