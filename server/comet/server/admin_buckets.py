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
        "immutable_seconds": bucket.immutable_seconds,
        "trash_objects": bucket.trash_objects,
        "trash_bytes": bucket.trash_bytes,
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
    print_table(
        rows,
        ["bucket_id", "user", "used_bytes", "quota_bytes", "created_at", "immutable_seconds"],
    )


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


def cmd_undelete(args: argparse.Namespace) -> None:
    if not args.keys and not args.all:
        raise SystemExit("name the objects to restore (KEY ...) or pass --all")
    admin = Admin(load_session())
    reply = admin.stub.UndeleteObjects(
        admin_pb2.UndeleteObjectsRequest(bucket_id=args.bucket_id, keys=args.keys, all=args.all),
        metadata=admin.metadata,
        timeout=120,
    )
    if args.json:
        print_json({"bucket_id": args.bucket_id, "restored": list(reply.restored)})
        return
    missing = sorted(set(args.keys) - set(reply.restored))
    print(f"restored {len(reply.restored)} object(s) from the trash of bucket {args.bucket_id}")
    for key in missing:
        print(f"not in the trash (or already present): {key}")


def cmd_grant_delete(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.GrantBucketDelete(
        admin_pb2.GrantBucketDeleteRequest(bucket_id=args.bucket_id),
        metadata=admin.metadata,
        timeout=30,
    )
    if args.json:
        print_json({"grant": reply.grant, "expires_at": rfc3339(reply.expires_at)})
    else:
        print(reply.grant)


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
    undel = bucket.add_parser(
        "undelete", help="restore objects an immutable bucket's retention moved to the trash"
    )
    undel.add_argument("bucket_id")
    undel.add_argument("keys", nargs="*", metavar="KEY")
    undel.add_argument("--all", action="store_true", help="restore everything in the trash")
    undel.add_argument("--json", action="store_true")
    undel.set_defaults(func=cmd_undelete)
    grant = bucket.add_parser(
        "grant-delete",
        help="a short-lived grant for retention/prune of an immutable bucket (SUPER admins)",
    )
    grant.add_argument("bucket_id")
    grant.add_argument("--json", action="store_true")
    grant.set_defaults(func=cmd_grant_delete)
