"""``comet vault edit|delete``, ``comet item edit``, ``comet schedule edit|delete``:
changing the profile after the fact. Each reads the profile, changes it and saves it
with the version it read, so a concurrent change elsewhere is refused, not lost."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from comet.agent.client_cli.common import AgentClient, CliError
from comet.agent.client_cli.schedules import add_when_arguments, set_when
from comet.agent.output import print_json
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


def _error(message: str) -> Exception:
    return CliError(message)


def _profile(client: AgentClient) -> common_pb2.Profile:
    return client.api.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=60)


def _save(client: AgentClient, profile: common_pb2.Profile) -> common_pb2.Profile:
    return client.api.SaveProfile(agent_api_pb2.SaveProfileRequest(profile=profile), timeout=60)


def find_vault(profile: common_pb2.Profile, ref: str) -> common_pb2.StorageVault:
    for vault in profile.vaults:
        if ref in (vault.vault_id, vault.name):
            return vault
    raise _error(f"no Storage Vault {ref!r} in this account (see 'comet vault list')")


def find_item(profile: common_pb2.Profile, ref: str) -> common_pb2.ProtectedItem:
    for item in profile.items:
        if ref in (item.item_id, item.name):
            return item
    raise _error(f"no Protected Item {ref!r} in this account (see 'comet item list')")


def find_schedule(profile: common_pb2.Profile, ref: str) -> common_pb2.Schedule:
    """By id or a unique id prefix (schedules have no names)."""
    found = [s for s in profile.schedules if s.schedule_id.startswith(ref)] if ref else []
    exact = [s for s in found if s.schedule_id == ref]
    if exact or len(found) == 1:
        return (exact or found)[0]
    if found:
        raise _error(f"{len(found)} schedules start with {ref!r}; give more characters")
    raise _error(f"no schedule {ref!r} in this account (see 'comet schedule list')")


# ---------------------------------------------------------------------------- vaults

_RANGES = (
    ("keep_last", common_pb2.RETENTION_RANGE_MOST_RECENT_X_JOBS, "jobs"),
    ("keep_within_days", common_pb2.RETENTION_RANGE_JOBS_SINCE, "days"),
    ("keep_daily", common_pb2.RETENTION_RANGE_LAST_X_BACKUPS_ONE_PER_DAY, "jobs"),
    ("keep_weekly", common_pb2.RETENTION_RANGE_LAST_X_BACKUPS_ONE_PER_WEEK, "jobs"),
    ("keep_monthly", common_pb2.RETENTION_RANGE_LAST_X_BACKUPS_ONE_PER_MONTH, "jobs"),
)


def set_retention(policy: common_pb2.RetentionPolicy, args: argparse.Namespace) -> bool:
    """Replace the policy's ranges with the ``--keep-*`` given; False if none was."""
    given = [(t, field, getattr(args, name)) for name, t, field in _RANGES if getattr(args, name)]
    if not given:
        return False
    del policy.ranges[:]
    policy.mode = common_pb2.RETENTION_MODE_DELETE_EXCEPT
    for range_type, field, value in given:
        policy.ranges.append(common_pb2.RetentionRange(type=range_type, **{field: value}))
    return True


def _done(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    if args.json:
        print_json(doc)
    else:
        print(text)


def cmd_vault_edit(client: AgentClient, args: argparse.Namespace) -> None:
    profile = _profile(client)
    vault = find_vault(profile, args.vault)
    if args.name and args.name != vault.name:
        if any(v.name == args.name for v in profile.vaults):
            raise _error(f"there is already a Storage Vault named {args.name!r}")
        vault.name = args.name
    if args.quota is not None:
        vault.quota_bytes = args.quota
    if args.keep_everything:
        vault.default_retention.Clear()
        vault.default_retention.mode = common_pb2.RETENTION_MODE_KEEP_EVERYTHING
    else:
        set_retention(vault.default_retention, args)
    if args.pre is not None:
        del vault.pre_commands[:]
        vault.pre_commands.extend(common_pb2.ProgramCommand(command=c) for c in args.pre if c)
    if args.post is not None:
        del vault.post_commands[:]
        vault.post_commands.extend(common_pb2.ProgramCommand(command=c) for c in args.post if c)
    _save(client, profile)
    _done(args, {"vault_id": vault.vault_id, "name": vault.name}, f"vault {vault.name} saved")


def cmd_vault_delete(client: AgentClient, args: argparse.Namespace) -> None:
    profile = _profile(client)
    vault = find_vault(profile, args.vault)
    schedules = [s for s in profile.schedules if s.vault_id == vault.vault_id]
    if not args.yes and sys.stdin.isatty():
        answer = input(
            f"Remove Storage Vault {vault.name!r} and its {len(schedules)} schedules from"
            " this account? Its data stays where it is. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            raise _error("nothing was removed")
    kept = [v for v in profile.vaults if v.vault_id != vault.vault_id]
    del profile.vaults[:]
    profile.vaults.extend(kept)
    others = [s for s in profile.schedules if s.vault_id != vault.vault_id]
    del profile.schedules[:]
    profile.schedules.extend(others)
    for item in profile.items:
        if vault.vault_id in item.retention_overrides:
            del item.retention_overrides[vault.vault_id]
    _save(client, profile)
    _done(
        args,
        {"vault_id": vault.vault_id, "deleted": True, "schedules_deleted": len(schedules)},
        f"Storage Vault {vault.name} removed with {len(schedules)} schedules; its data was"
        " left in place ('comet vault add --attach' adopts it again while another vault of"
        " this account shares its key)",
    )


def cmd_vault_trust_host_key(client: AgentClient, args: argparse.Namespace) -> None:
    """Pin the host key an SFTP vault's server presents now (a vault saved before
    Comet pinned host keys, or a server whose key was replaced on purpose)."""
    from comet.agent.client_cli.vaults import ask_trust
    from comet.agent.storage.sftp import describe_host_key, host_key_matches

    profile = _profile(client)
    vault = find_vault(profile, args.vault)
    if vault.WhichOneof("settings") != "sftp":
        raise _error(f"Storage Vault {vault.name!r} is not an SFTP vault: it has no host key")
    host, port = vault.sftp.host, vault.sftp.port or 22
    where = f"{host}:{port}"
    reply = client.api.SftpHostKey(
        agent_api_pb2.SftpHostKeyRequest(host=host, port=port, expected=args.host_key or ""),
        timeout=60,
    )
    shown = f"{reply.fingerprint} ({reply.key_type})"
    old = vault.sftp.host_key
    doc = {"vault_id": vault.vault_id, "name": vault.name, "fingerprint": reply.fingerprint}
    note = ""
    if old:
        if host_key_matches(old, reply.host_key):
            _done(
                args,
                {**doc, "changed": False},
                f"vault {vault.name} already pins the host key {shown} of {where}",
            )
            return
        note = (
            f"It is NOT the key vault {vault.name!r} pinned ({describe_host_key(old)}): trust"
            " it only if the server's key was replaced on purpose."
        )
    refused = f"host key not trusted; vault {vault.name} was not changed"
    if args.host_key:
        if not reply.matches:
            raise _error(
                f"the SFTP server {where} presents host key {shown}, not the one given with"
                f" --host-key ({args.host_key}); vault {vault.name} was not changed"
            )
    elif not ask_trust(where, shown, refused=refused, note=note):
        raise _error(
            f"the SFTP server {where} presents host key {shown}"
            + (f" (vault {vault.name!r} pinned {describe_host_key(old)})" if old else "")
            + f"; check it and run again with --host-key {reply.fingerprint} to trust it"
        )
    vault.sftp.host_key = reply.host_key
    _save(client, profile)
    _done(
        args,
        {**doc, "changed": True},
        f"vault {vault.name} now pins the host key {shown} of {where}",
    )


# ---------------------------------------------------------------------------- items


def cmd_item_edit(client: AgentClient, args: argparse.Namespace) -> None:
    from pathlib import Path

    profile = _profile(client)
    item = find_item(profile, args.item)
    if args.name and args.name != item.name:
        if any(i.name == args.name for i in profile.items):
            raise _error(f"there is already a Protected Item named {args.name!r}")
        item.name = args.name

    def edit(values: Any, add: list[str], remove: list[str], what: str) -> None:
        for value in remove:
            if value not in values:
                raise _error(f"{value!r} is not one of the item's {what}")
            values.remove(value)
        for value in add:
            if value not in values:
                values.append(value)

    edit(
        item.includes,
        [str(Path(p).absolute()) for p in args.add_include],
        [str(Path(p).absolute()) for p in args.remove_include],
        "include paths",
    )
    edit(item.exclude_globs, args.add_exclude, args.remove_exclude, "exclude globs")
    if item.type == common_pb2.ITEM_TYPE_FILES and not item.includes:
        raise _error("a Files and Folders item needs at least one include path")
    if args.rescan_unchanged is not None:
        item.rescan_unchanged = args.rescan_unchanged
    _save(client, profile)
    _done(args, {"item_id": item.item_id, "name": item.name}, f"item {item.name} saved")


# ---------------------------------------------------------------------------- schedules


def cmd_schedule_edit(client: AgentClient, args: argparse.Namespace) -> None:
    profile = _profile(client)
    schedule = find_schedule(profile, args.schedule)
    if args.item:
        schedule.item_id = find_item(profile, args.item).item_id
    if args.vault:
        schedule.vault_id = find_vault(profile, args.vault).vault_id
    set_when(schedule, args)
    for name, field in (
        ("skip_if_running", "skip_if_running"),
        ("enabled", "enabled"),
        ("stop_after", "stop_after_seconds"),
        ("retries", "retry_count"),
        ("retry_delay", "retry_delay_seconds"),
        ("random_delay", "random_delay_seconds"),
        ("bandwidth_limit", "bandwidth_limit_bps"),
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(schedule, field, value)
    _save(client, profile)
    _done(args, {"schedule_id": schedule.schedule_id}, f"schedule {schedule.schedule_id} saved")


def cmd_schedule_delete(client: AgentClient, args: argparse.Namespace) -> None:
    profile = _profile(client)
    doomed = find_schedule(profile, args.schedule).schedule_id
    kept = [s for s in profile.schedules if s.schedule_id != doomed]
    del profile.schedules[:]
    profile.schedules.extend(kept)
    _save(client, profile)
    _done(args, {"schedule_id": doomed, "deleted": True}, f"schedule {doomed} deleted")


def _flag_pair(parser: argparse.ArgumentParser, name: str, dest: str, text: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=dest, action="store_true", default=None, help=text)
    group.add_argument(f"--no-{name}", dest=dest, action="store_false")


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")


def add_vault_commands(vault: Subcommands) -> None:
    """``vault edit`` and ``vault delete``."""
    vedit = vault.add_parser("edit", help="rename a vault, change quota or retention")
    vedit.add_argument("vault", help="vault id or name")
    vedit.add_argument("--name", help="the new name")
    vedit.add_argument("--quota", type=int, help="quota in bytes (0: none)")
    retention = vedit.add_argument_group("default retention (replaces the rules)")
    retention.add_argument("--keep-everything", action="store_true")
    for name, _t, _f in _RANGES:
        retention.add_argument("--" + name.replace("_", "-"), type=int, metavar="N")
    vedit.add_argument(
        "--pre", action="append", help="replace the pre-backup commands ('' for none)"
    )
    vedit.add_argument(
        "--post", action="append", help="replace the post-backup commands ('' for none)"
    )
    json_flag(vedit)
    vedit.set_defaults(func=cmd_vault_edit)
    vdel = vault.add_parser(
        "delete", help="remove a vault (and its schedules) from the account; data stays"
    )
    vdel.add_argument("vault", help="vault id or name")
    vdel.add_argument("--yes", action="store_true", help="do not ask to confirm")
    json_flag(vdel)
    vdel.set_defaults(func=cmd_vault_delete)
    vtrust = vault.add_parser(
        "trust-host-key",
        help="show an SFTP vault's server host key and pin it (vaults saved before pinning,"
        " or a server whose key was replaced)",
    )
    vtrust.add_argument("vault", help="vault id or name")
    vtrust.add_argument(
        "--host-key",
        help="the key you expect: SHA256:<fingerprint>, 'type base64' or a known_hosts line"
        " (without it the fingerprint is shown and confirmed on a terminal)",
    )
    json_flag(vtrust)
    vtrust.set_defaults(func=cmd_vault_trust_host_key)


def add_item_commands(item: Subcommands) -> None:
    """``item edit``."""
    iedit = item.add_parser("edit", help="rename an item, change what it includes")
    iedit.add_argument("item", help="item id or name")
    iedit.add_argument("--name", help="the new name")
    iedit.add_argument("--add-include", action="append", default=[], metavar="PATH")
    iedit.add_argument("--remove-include", action="append", default=[], metavar="PATH")
    iedit.add_argument("--add-exclude", action="append", default=[], metavar="GLOB")
    iedit.add_argument("--remove-exclude", action="append", default=[], metavar="GLOB")
    _flag_pair(iedit, "rescan-unchanged", "rescan_unchanged", "re-read unchanged files")
    json_flag(iedit)
    iedit.set_defaults(func=cmd_item_edit)


def add_schedule_commands(schedule: Subcommands) -> None:
    """``schedule edit`` and ``schedule delete``."""
    sedit = schedule.add_parser("edit", help="change when or how a schedule runs")
    sedit.add_argument("schedule", help="schedule id (or its first characters)")
    sedit.add_argument("--item", help="item id or name")
    sedit.add_argument("--vault", help="vault id or name")
    add_when_arguments(sedit)
    _flag_pair(sedit, "skip-if-running", "skip_if_running", "skip a run while one is going")
    _flag_pair(sedit, "enable", "enabled", "run it (--no-enable pauses it)")
    sedit.add_argument("--stop-after", type=int, metavar="SECONDS")
    sedit.add_argument("--retries", type=int)
    sedit.add_argument("--retry-delay", type=int, metavar="SECONDS")
    sedit.add_argument("--random-delay", type=int, metavar="SECONDS")
    sedit.add_argument("--bandwidth-limit", type=int, metavar="BYTES_PER_S")
    json_flag(sedit)
    sedit.set_defaults(func=cmd_schedule_edit)
    sdel = schedule.add_parser("delete", help="delete a schedule")
    sdel.add_argument("schedule", help="schedule id (or its first characters)")
    json_flag(sdel)
    sdel.set_defaults(func=cmd_schedule_delete)
