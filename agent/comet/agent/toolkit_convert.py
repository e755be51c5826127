"""Domain ↔ wire for the snapshot toolkit's local API calls (diff, stats, retention
preview)."""

from __future__ import annotations

from collections.abc import Mapping

from comet.agent.browse.diff import DiffEntry
from comet.agent.convert import node_type_to_proto, snapshot_to_proto
from comet.agent.maintenance.stats import UsageTotals
from comet.agent.printable import printable
from comet.agent.snapshot_info import snapshot_info
from comet.agent.snapshot_tools import DiffResult, RetentionPreview, StatsResult
from comet.v1 import agent_api_pb2


def _entry(e: DiffEntry) -> agent_api_pb2.DiffEntry:
    return agent_api_pb2.DiffEntry(
        path=printable(e.path),
        change=e.change.value,
        old_type=node_type_to_proto(e.old_type),
        new_type=node_type_to_proto(e.new_type),
        old_size=e.old_size,
        new_size=e.new_size,
    )


def diff_to_proto(result: DiffResult) -> agent_api_pb2.DiffReply:
    t = result.totals
    return agent_api_pb2.DiffReply(
        old_snapshot_id=result.old.id.hex(),
        new_snapshot_id=result.new.id.hex(),
        entries=[_entry(e) for e in result.entries],
        added=t.added,
        removed=t.removed,
        modified=t.modified,
        metadata=t.metadata,
        added_bytes=t.added_bytes,
        removed_bytes=t.removed_bytes,
        trees_read=t.trees_read,
    )


def _totals(t: UsageTotals) -> agent_api_pb2.UsageTotals:
    return agent_api_pb2.UsageTotals(
        snapshots=t.snapshots,
        files=t.files,
        restore_bytes=t.restore_bytes,
        raw_bytes=t.raw_bytes,
        stored_bytes=t.stored_bytes,
        blobs=t.blobs,
    )


def stats_to_proto(result: StatsResult) -> agent_api_pb2.StatsReply:
    return agent_api_pb2.StatsReply(
        totals=_totals(result.stats.totals),
        groups=[
            agent_api_pb2.GroupUsage(
                device_id=g.device_id,
                item_id=g.item_id,
                item_name=result.item_names.get(g.item_id, ""),
                totals=_totals(g.totals),
            )
            for g in result.stats.groups
        ],
        snapshot_ids=list(result.snapshot_ids),
    )


def retention_to_proto(preview: RetentionPreview) -> agent_api_pb2.PlanRetentionReply:
    names: Mapping[str, str] = preview.item_names
    return agent_api_pb2.PlanRetentionReply(
        verdicts=[
            agent_api_pb2.RetentionVerdict(
                snapshot=snapshot_to_proto(snapshot_info(v.snapshot, names)),
                keep=v.kept,
                reasons=list(v.reasons),
            )
            for v in preview.verdicts
        ]
    )
