"""``comet item add|delete|list``: Protected Items of the account."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comet.agent.client_cli.common import AgentClient, CliError
from comet.agent.output import print_json, print_table
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


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
    saved = client.api.AddItem(
        agent_api_pb2.AddItemRequest(item=item, allow_missing_includes=args.allow_missing),
        timeout=60,
    )
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


def register(sub: Subcommands) -> None:
    item = sub.add_parser("item", help="Protected Items").add_subparsers(dest="sub", required=True)
    iadd = item.add_parser("add", help="add a Protected Item (prints its id)")
    iadd.add_argument("name")
    iadd.add_argument("--type", choices=["files", "program"], required=True)
    iadd.add_argument("--include", action="append")
    iadd.add_argument(
        "--allow-missing",
        action="store_true",
        help="accept --include paths that do not exist yet (refused otherwise)",
    )
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
    from comet.agent.client_cli import profile_edit  # it builds on this module

    profile_edit.add_item_commands(item)
