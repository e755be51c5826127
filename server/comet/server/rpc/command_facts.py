"""What a command for a device would do, read from the wire command and the owner's
profile, so ``AdminService.Dispatch`` can ask the permission table about it; plus
the audit text of a command and the redaction of replies the user keeps private."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

from comet.server.authorization import CommandFacts
from comet.v1 import common_pb2, control_pb2

Doc = dict[str, Any]

AUDIT_DETAILS_CHARS = 2000
_PROGRAM_RESTORES = (
    common_pb2.RESTORE_TYPE_PROGRAM_PER_FILE,
    common_pb2.RESTORE_TYPE_PROGRAM_ARCHIVE,
)
_DESTROYS = frozenset({"delete_snapshots", "disconnect", "change_login_url"})
_SHOWS_FILES = frozenset({"browse_snapshot", "search_snapshots", "browse_filesystem"})
# Commands judged with the owner's profile (their item and vault, the privacy setting).
NEEDS_PROFILE = _SHOWS_FILES | {"run_backup", "run_restore", "list_snapshots"}


def _find(entries: list[Doc], ref: str, key: str) -> Doc | None:
    for entry in entries:
        if ref and (entry.get(key) == ref or entry.get("name") == ref):
            return entry
    return None


def _has_commands(entry: Doc | None) -> bool:
    return bool(entry and (entry.get("pre_commands") or entry.get("post_commands")))


def _backup_runs_program(command: control_pb2.RunBackupCommand, doc: Doc) -> bool:
    item_ref, vault_ref = command.item_id, command.vault_id
    if command.schedule_id:
        schedule = _find(doc.get("schedules", []), command.schedule_id, "schedule_id")
        if schedule is None:
            return True  # unknown here: judge it as the most powerful it could be
        item_ref, vault_ref = str(schedule.get("item_id", "")), str(schedule.get("vault_id", ""))
    item = _find(doc.get("items", []), item_ref, "item_id")
    vault = _find(doc.get("vaults", []), vault_ref, "vault_id")
    if item is None or vault is None:
        return True
    return (
        item.get("type") == common_pb2.ITEM_TYPE_PROGRAM
        or bool(item.get("program_command"))
        or _has_commands(item)
        or _has_commands(vault)
    )


def facts_of(command: control_pb2.Command, doc: Doc) -> CommandFacts:
    """``doc`` is the device owner's stored profile document."""
    kind = command.WhichOneof("action") or ""
    if kind == "run_restore":
        options = command.run_restore.options
        if options.type in _PROGRAM_RESTORES or options.program_command:
            return CommandFacts(kind, runs_program=True, shows_files=True)
        elsewhere = options.type == common_pb2.RESTORE_TYPE_ARCHIVE_FILE or (
            options.type == common_pb2.RESTORE_TYPE_FILES and not options.original_paths
        )
        return CommandFacts(kind, shows_files=elsewhere)
    if kind == "run_backup":
        return CommandFacts(kind, runs_program=_backup_runs_program(command.run_backup, doc))
    if kind == "import_settings":
        return CommandFacts(kind, runs_program=True)
    return CommandFacts(kind, shows_files=kind in _SHOWS_FILES, destroys=kind in _DESTROYS)


def details_of(command: control_pb2.Command) -> str:
    """The command's parameters, for the audit log."""
    fields = json_format.MessageToDict(command, preserving_proto_field_name=True)
    fields.pop("request_id", None)
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    if len(text) > AUDIT_DETAILS_CHARS:
        text = text[: AUDIT_DETAILS_CHARS - 1] + "…"
    return text


def redact_private(reply: control_pb2.CommandReply) -> control_pb2.CommandReply:
    """A reply without the names of the user's files, for a user who keeps them
    from administrators: snapshot listings lose their paths."""
    if reply.HasField("snapshots"):
        for snapshot in reply.snapshots.snapshots:
            del snapshot.paths[:]
    if reply.HasField("entries"):
        reply.ClearField("entries")
    return reply
