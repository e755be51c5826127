"""``comet import SOURCE --dry-run``: print exactly what the import would create (the
same objects the Import job adds, with placeholder ids ``new-N``), changing nothing."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from google.protobuf.json_format import MessageToDict

from comet.agent.output import print_json
from comet.v1 import agent_api_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli import AgentClient


def preview_json(preview: agent_api_pb2.ImportPreview) -> dict[str, Any]:
    from comet.agent.client_cli import item_json, schedule_json, vault_json

    vaults = []
    for vault, missing in zip(preview.vaults, preview.missing_secrets, strict=False):
        doc = vault_json(vault)
        doc["default_retention"] = MessageToDict(
            vault.default_retention, preserving_proto_field_name=True
        )
        doc["missing_secrets"] = [m for m in missing.split(", ") if m]
        vaults.append(doc)
    return {
        "vaults": vaults,
        "items": [item_json(i) for i in preview.items],
        "schedules": [schedule_json(s) for s in preview.schedules],
        "warnings": list(preview.warnings),
    }


def cmd_import_preview(client: AgentClient, args: argparse.Namespace) -> None:
    preview = client.api.PreviewImport(
        agent_api_pb2.PreviewImportRequest(source_id=args.source_id), timeout=60
    )
    doc = preview_json(preview)
    if args.json:
        print_json(doc)
        return
    names = {v["vault_id"]: v["name"] for v in doc["vaults"]}
    names |= {i["item_id"]: i["name"] for i in doc["items"]}
    lines = [f"importing {args.source_id} would create:"]
    for v in doc["vaults"]:
        needs = f"; needs {', '.join(v['missing_secrets'])}" if v["missing_secrets"] else ""
        lines.append(f"  Storage Vault {v['name']!r} ({v['type']}: {v['location']}){needs}")
    for i in doc["items"]:
        parts = [f"include {', '.join(i['includes']) or '(nothing)'}"]
        if i["excludes"]:
            parts.append(f"exclude {', '.join(i['excludes'])}")
        if i["exclude_regexes"]:
            parts.append(f"exclude regex {', '.join(i['exclude_regexes'])}")
        lines.append(f"  Protected Item {i['name']!r} ({i['type']}): {'; '.join(parts)}")
    for s in doc["schedules"]:
        lines.append(f"  schedule {names[s['item_id']]!r} -> {names[s['vault_id']]!r}: {s['when']}")
    if len(lines) == 1:
        lines.append("  nothing")
    lines += [f"note: {w}" for w in doc["warnings"]]
    lines.append("nothing was changed (dry run)")
    print("\n".join(lines))
