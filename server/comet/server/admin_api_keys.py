"""``comet-admin api-key create|list|revoke``: the administrator's own keys for the
HTTP API (/api/v1/). The key is printed once, at creation."""

from __future__ import annotations

import argparse
from typing import Any

from comet.agent.output import print_json
from comet.server.admin_session import Admin, load_session
from comet.v1 import admin_pb2

_ROLES = {
    "": admin_pb2.ADMIN_ROLE_UNSPECIFIED,
    "super": admin_pb2.ADMIN_ROLE_SUPER,
    "operator": admin_pb2.ADMIN_ROLE_OPERATOR,
    "auditor": admin_pb2.ADMIN_ROLE_AUDITOR,
}
_ROLE_NAMES = {v: k for k, v in _ROLES.items() if k}


def add_parsers(sub: Any) -> None:
    keys = sub.add_parser("api-key", help="your keys for the HTTP API").add_subparsers(
        dest="sub", required=True
    )
    create = keys.add_parser("create", help="create a key (printed once)")
    create.add_argument("name", help="what the key is for, e.g. 'monitoring'")
    create.add_argument(
        "--role",
        choices=[r for r in _ROLES if r],
        default="",
        help="the key's role (default: your own; only a super admin may pick another)",
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_create)
    ls = keys.add_parser("list", help="list your keys (never the keys themselves)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    revoke = keys.add_parser("revoke", help="revoke one of your keys")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_revoke)


def _info(info: admin_pb2.ApiKeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "name": info.name,
        "role": _ROLE_NAMES.get(info.role, "user"),
        "prefix": info.prefix,
        "created_at": info.created_at.ToDatetime().isoformat() + "Z",
        "last_used_at": (
            info.last_used_at.ToDatetime().isoformat() + "Z"
            if info.HasField("last_used_at")
            else None
        ),
        "revoked": info.revoked,
    }


def cmd_create(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(name=args.name, role=_ROLES[args.role]),
        metadata=admin.metadata,
        timeout=30,
    )
    if args.json:
        print_json({"key": reply.key, **_info(reply.info)})
        return
    print(f"API key {reply.info.key_id} ({_ROLE_NAMES.get(reply.info.role, '?')}):")
    print(reply.key)
    print("Shown only now; send it as 'Authorization: Bearer KEY' to /api/v1/.")


def cmd_list(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.ListApiKeys(
        admin_pb2.ListApiKeysRequest(), metadata=admin.metadata, timeout=30
    )
    rows = [_info(k) for k in reply.keys]
    if args.json:
        print_json(rows)
        return
    if not rows:
        print("no API keys: create one with 'comet-admin api-key create NAME'")
    for row in rows:
        state = "revoked" if row["revoked"] else f"last used {row['last_used_at'] or 'never'}"
        print(f"{row['key_id']}  {row['prefix']}…  {row['role']:<8}  {row['name']}  ({state})")


def cmd_revoke(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    admin.stub.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(key_id=args.key_id), metadata=admin.metadata, timeout=30
    )
    print(f"API key {args.key_id} revoked")
