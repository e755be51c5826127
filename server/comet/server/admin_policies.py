"""``comet-admin policy``: create, edit, list, delete and assign policies.

A policy file is the JSON form of the ``comet.v1.Policy`` message, for example::

    {"flags": {"prevent_delete_vault": true},
     "exclusions": [{"pattern": "*.tmp"}],
     "default_retention": {"mode": "RETENTION_MODE_DELETE_EXCEPT",
                           "ranges": [{"type": "RETENTION_RANGE_MOST_RECENT_X_JOBS",
                                       "jobs": 30}]},
     "enforce_retention": true}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from comet.agent.output import print_json, print_table
from comet.server.admin_session import Admin, AdminCliError, load_session
from comet.server.errors import InvalidRequestError
from comet.server.rpc import convert
from comet.v1 import admin_pb2, common_pb2


def read_policy_file(path: Path) -> common_pb2.Policy:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AdminCliError(f"cannot read policy file {path}: {e}") from e
    try:
        return convert.policy_message(data)  # the console and the API parse the same way
    except InvalidRequestError as e:
        raise AdminCliError(f"{path}: {e.message}") from e


def policy_json(policy: common_pb2.Policy) -> dict[str, Any]:
    body = json_format.MessageToDict(policy, preserving_proto_field_name=True)
    return {
        "policy_id": policy.policy_id,
        "name": policy.name,
        "is_default": policy.is_default,
        "version": policy.version,
        "policy": body,
    }


def _find(admin: Admin, policy_id: str) -> common_pb2.Policy:
    reply = admin.stub.ListPolicies(
        admin_pb2.ListPoliciesRequest(), metadata=admin.metadata, timeout=30
    )
    for policy in reply.policies:
        if policy.policy_id == policy_id:
            return policy
    raise AdminCliError(f"no policy {policy_id!r}")


def cmd_create(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    policy = read_policy_file(args.file)
    policy.policy_id = ""
    policy.version = 0
    policy.name = args.name
    policy.is_default = args.default or policy.is_default
    stored = admin.stub.PutPolicy(policy, metadata=admin.metadata, timeout=30)
    if args.json:
        print_json(policy_json(stored))
    else:
        print(stored.policy_id)


def cmd_edit(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    current = _find(admin, args.policy_id)
    policy = read_policy_file(args.file)
    policy.policy_id = current.policy_id
    policy.name = args.name or policy.name or current.name
    # The version read now: an edit racing another admin's is refused, not merged.
    policy.version = policy.version or current.version
    if args.default is not None:
        policy.is_default = args.default
    stored = admin.stub.PutPolicy(policy, metadata=admin.metadata, timeout=30)
    if args.json:
        print_json(policy_json(stored))
    else:
        print(f"policy {stored.name!r} updated (version {stored.version})")


def cmd_list(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    reply = admin.stub.ListPolicies(
        admin_pb2.ListPoliciesRequest(), metadata=admin.metadata, timeout=30
    )
    rows = [policy_json(p) for p in reply.policies]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["policy_id", "name", "is_default", "version"])


def cmd_delete(args: argparse.Namespace) -> None:
    admin = Admin(load_session())
    admin.stub.DeletePolicy(
        admin_pb2.DeletePolicyRequest(policy_id=args.policy_id), metadata=admin.metadata, timeout=30
    )
    print(f"policy {args.policy_id} deleted")


def cmd_assign(args: argparse.Namespace) -> None:
    if bool(args.policy_id) == bool(args.none):
        raise AdminCliError("give a policy id or --none")
    admin = Admin(load_session())
    admin.stub.AssignPolicy(
        admin_pb2.AssignPolicyRequest(username=args.user, policy_id=args.policy_id or ""),
        metadata=admin.metadata,
        timeout=30,
    )
    if args.none:
        print(f"{args.user!r} has no policy assigned (the default policy applies)")
    else:
        print(f"policy {args.policy_id} assigned to {args.user!r}")


def add_parsers(sub: Any) -> None:
    policy = sub.add_parser("policy", help="manage policies").add_subparsers(
        dest="sub", required=True
    )
    create = policy.add_parser("create", help="create a policy from a JSON file")
    create.add_argument("name")
    create.add_argument("--file", type=Path, required=True, help="the Policy message as JSON")
    create.add_argument("--default", action="store_true", help="apply to users with no policy")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_create)

    edit = policy.add_parser("edit", help="replace a policy with a JSON file")
    edit.add_argument("policy_id")
    edit.add_argument("--file", type=Path, required=True)
    edit.add_argument("--name")
    edit.add_argument("--default", action=argparse.BooleanOptionalAction, default=None)
    edit.add_argument("--json", action="store_true")
    edit.set_defaults(func=cmd_edit)

    ls = policy.add_parser("list", help="list policies")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    rm = policy.add_parser("delete", help="delete a policy (its users fall back to the default)")
    rm.add_argument("policy_id")
    rm.set_defaults(func=cmd_delete)

    assign = policy.add_parser("assign", help="assign a policy to a user")
    assign.add_argument("user")
    assign.add_argument("policy_id", nargs="?")
    assign.add_argument("--none", action="store_true", help="unassign; the default applies")
    assign.set_defaults(func=cmd_assign)
