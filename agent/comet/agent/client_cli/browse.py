"""``comet snapshots|ls|find``: what a vault holds, read without restoring."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

import grpc
import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from comet.agent.client_cli.common import AgentClient, CliError
from comet.agent.client_cli.snapshot_tools import add_snapshot_filters
from comet.agent.output import cell, print_json, print_table, rfc3339, rfc3339_parts
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


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


LS_COLUMNS = ("type", "mode", "size", "mtime", "path")


def cmd_ls(client: AgentClient, args: argparse.Namespace) -> None:
    request = agent_api_pb2.ListDirRequest(
        vault_id=args.vault,
        snapshot_id=args.snapshot,
        path=args.path or "/",
        recursive=args.recursive,
        item_id=args.item or "",
        tags=args.tag,
    )
    if args.recursive:  # streamed: printed as it arrives, never held whole
        request.columns = True
        batches = map(reply_rows, _tree_replies(client, request))
        if args.json:
            _stream_json(batches)
        else:
            _stream_table(batches, LS_COLUMNS)
        return
    reply = client.api.ListDir(request, timeout=300)
    rows = [entry_json(e) for e in reply.entries]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, LS_COLUMNS)


def reply_rows(reply: agent_api_pb2.ListDirReply) -> list[dict[str, Any]]:
    """A ListDir/ListTree reply's entries as ``entry_json`` rows, whichever way the
    agent sent them (``entries``, or ``columns`` when the request asked for them)."""
    if not reply.HasField("columns"):
        return [entry_json(e) for e in reply.entries]
    c = reply.columns
    snapshot_id = c.snapshot_id or None
    names = [NODE_NAMES.get(t, "unknown") for t in c.type]
    modes = [oct(m & 0o7777) for m in c.mode]
    mtimes = map(rfc3339_parts, c.mtime_seconds, c.mtime_nanos)
    return [
        {
            "path": path,
            "type": name,
            "size": size,
            "mode": mode,
            "mtime": mtime,
            "link_target": target or None,
            "snapshot_id": snapshot_id,
        }
        for path, name, size, mode, mtime, target in zip(
            c.path, names, c.size, modes, mtimes, c.link_target, strict=True
        )
    ]


def _tree_replies(
    client: AgentClient, request: agent_api_pb2.ListDirRequest
) -> Iterator[agent_api_pb2.ListDirReply]:
    """ListTree's replies; one ListDir reply from an agent older than ListTree."""
    try:
        yield from client.api.ListTree(request, timeout=24 * 3600)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        yield client.api.ListDir(request, timeout=300)


def _stream_json(batches: Iterable[list[dict[str, Any]]]) -> None:
    """One JSON array, as print_json writes it, written a batch at a time. For flat
    rows of strings, ints, booleans and None (a listing's; a float would be written as
    orjson writes it). Each batch is one orjson call, which gives json's bytes for those
    (its indenting, and its escapes with ``ensure_ascii=False``); a batch orjson refuses
    (a string that is not UTF-8, an integer past 64 bits) is written by ``_array_item``."""
    out = sys.stdout
    first = True
    out.write("[")
    for rows in batches:
        if not rows:
            continue
        try:
            # b'[\n  {…},\n  {…}\n]' less its brackets
            text = orjson.dumps(rows, option=orjson.OPT_INDENT_2)[1:-2].decode()
        except orjson.JSONEncodeError:
            text = "\n  " + ",\n  ".join(map(_array_item, rows))
        out.write(text if first else "," + text)
        first = False
    out.write("]\n" if first else "\n]\n")


def _array_item(row: dict[str, Any]) -> str:
    """``json.dumps(row, indent=2, ensure_ascii=False)`` indented as an array item.

    A listing's rows are flat (strings, ints, booleans, None): those are written here
    with json's own C string encoder (json.dumps with ``indent`` runs json's pure-Python
    encoder)."""
    parts = []
    for key, value in row.items():
        if isinstance(value, str):
            text = encode_basestring(value)
        elif value is None:
            text = "null"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif type(value) is int:
            text = int.__repr__(value)
        else:
            return json.dumps(row, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        parts.append(f"{encode_basestring(key)}: {text}")
    return "{\n    " + ",\n    ".join(parts) + "\n  }" if parts else "{}"


def _stream_table(batches: Iterable[list[dict[str, Any]]], columns: Sequence[str]) -> None:
    """print_table a batch at a time: the first batch sets the column widths, which
    only grow after it (a wider cell later shifts its own line, not the others)."""
    widths: list[int] = []
    for rows in batches:
        cells = [[cell(row.get(c)) for c in columns] for row in rows]
        if not widths and cells:
            widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
            header = (c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
            print("  ".join(header).rstrip())
        for r in cells:
            widths = [max(w, len(v)) for w, v in zip(widths, r, strict=True)]
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if not widths:
        print("(none)")


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


def register(sub: Subcommands) -> None:
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
