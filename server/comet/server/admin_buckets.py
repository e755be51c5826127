"""``comet-admin bucket``: list and delete the buckets of "Comet Server" vaults."""

from __future__ import annotations

import argparse
from typing import Any

from comet.agent.output import print_json, print_table, rfc3339
from comet.server.admin_session import Admin, load_session
from comet.v1 import admin_pb2


def bucket_json(bucket: admin_pb2.BucketInfo) -> dict[str, Any]:
    return {
        "bucket_id": bucket.bucket_id,
        "user": bucket.username,
        "used_bytes": bucket.used_bytes,
        "quota_bytes": bucket.quota_bytes,
        "created_at": rfc3339(bucket.created_at),
        "account_deleted": bucket.account_deleted,
    }


def cmd_list(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.ListBuckets(
        admin_pb2.ListBucketsRequest(username=args.user or ""),
        metadata=admin.metadata,
        timeout=30,
    )
    rows = [bucket_json(b) for b in reply.buckets]
    if args.json:
        print_json(rows)
        return
    for row in rows:
        if row["account_deleted"]:
            row["user"] = f"{row['user']} (deleted)"
    print_table(rows, ["bucket_id", "user", "used_bytes", "quota_bytes", "created_at"])


def cmd_delete(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.DeleteBucket(
        admin_pb2.DeleteBucketRequest(bucket_id=args.bucket_id),
        metadata=admin.metadata,
        timeout=120,
    )
    if args.json:
        print_json({"bucket_id": args.bucket_id, "freed_bytes": reply.freed_bytes})
    else:
        print(f"bucket {args.bucket_id} deleted ({reply.freed_bytes} bytes freed)")


def add_parsers(sub: Any) -> None:
    bucket = sub.add_parser("bucket", help="manage Comet Server vault buckets").add_subparsers(
        dest="sub", required=True
    )
    ls = bucket.add_parser("list", help="list buckets, their owners and usage")
    ls.add_argument("--user", help="only this user's buckets (also those kept after deletion)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    rm = bucket.add_parser("delete", help="delete a bucket and everything stored in it")
    rm.add_argument("bucket_id")
    rm.add_argument("--json", action="store_true")
    rm.set_defaults(func=cmd_delete)
