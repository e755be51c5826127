"""What ``comet ls`` (plain, ``-R``, ``--json``) and ``comet find`` print for a crafted
snapshot with odd names, pinned byte for byte: ``listing_output_golden.json`` was
written by the code before listings were streamed in columns (commit 05a1274), with
the snapshot id replaced by ``SNAPSHOT``. The agent's side (walk, conversion), the
wire (serialized and parsed again) and the CLI's side (rows, JSON, table) all run."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from comet.agent.browse import Entry, FindQuery, find, list_dir, list_tree
from comet.agent.client_cli.browse import (
    LS_COLUMNS,
    _stream_json,
    _stream_table,
    entry_json,
    reply_rows,
)
from comet.agent.convert import columns_to_proto, entry_to_proto
from comet.agent.output import print_json, print_table
from comet.agent.repository import Repository
from comet.agent.storage.memory import MemoryStorage
from comet.v1 import agent_api_pb2, common_pb2
from tests.agent.browse.listing_snapshot import crafted_listing_snapshot

GOLDEN = json.loads((Path(__file__).parent / "listing_output_golden.json").read_text())
UNDER = {"root": (), "sub": ("top dir",)}


@pytest.fixture(scope="module")
def snapshot() -> tuple[Repository, bytes]:
    repo = Repository.init(MemoryStorage(), b"c" * 32)
    return repo, crafted_listing_snapshot(repo)


def _printed(snapshot_id: bytes, write: Callable[[], None]) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        write()
    return out.getvalue().replace(snapshot_id.hex(), "SNAPSHOT")


def _wire(reply: agent_api_pb2.ListDirReply) -> agent_api_pb2.ListDirReply:
    return agent_api_pb2.ListDirReply.FromString(reply.SerializeToString())


def _tree_replies(
    repo: Repository, snapshot_id: bytes, under: tuple[str, ...], *, columns: bool
) -> Iterator[agent_api_pb2.ListDirReply]:
    """What ListTree sends: columns to a client that asks for them, else entries."""
    for batch in list_tree(repo, snapshot_id, under=under, batch=3):
        if columns:
            yield _wire(agent_api_pb2.ListDirReply(columns=columns_to_proto(batch)))
        else:
            entries = [entry_to_proto(e) for e in batch.entries()]
            yield _wire(agent_api_pb2.ListDirReply(entries=entries))


@pytest.mark.parametrize("columns", [True, False], ids=["columns", "entries"])
@pytest.mark.parametrize("where", sorted(UNDER))
def test_ls_recursive_prints_what_it_did(
    snapshot: tuple[Repository, bytes], where: str, columns: bool
) -> None:
    repo, sid = snapshot
    under = UNDER[where]

    def batches() -> Iterator[list[dict[str, object]]]:
        return map(reply_rows, _tree_replies(repo, sid, under, columns=columns))

    assert _printed(sid, lambda: _stream_json(batches())) == GOLDEN[f"ls -R --json {where}"]
    table = _printed(sid, lambda: _stream_table(batches(), LS_COLUMNS))
    assert table == GOLDEN[f"ls -R {where}"]


def test_ls_recursive_columns_hold_what_entries_hold(
    snapshot: tuple[Repository, bytes],
) -> None:
    repo, sid = snapshot
    walked = [e for batch in list_tree(repo, sid, batch=5) for e in batch.entries()]
    assert walked == list(find(repo, [sid], FindQuery()))
    assert [e.path for e in walked][:3] == ["/empty dir", "/top dir", "/top dir/inner"]
    assert not any("unsafe" in e.path or e.path.endswith("/a/b") for e in walked)


def test_ls_and_find_print_what_they_did(snapshot: tuple[Repository, bytes]) -> None:
    repo, sid = snapshot
    rows = [entry_json(_wire_entry(e)) for e in list_dir(repo, sid, "/")]
    assert _printed(sid, lambda: print_json(rows)) == GOLDEN["ls --json"]
    assert _printed(sid, lambda: print_table(rows, LS_COLUMNS)) == GOLDEN["ls"]
    found = [entry_json(_wire_entry(e)) for e in find(repo, [sid], FindQuery(name_glob="*e*"))]
    assert _printed(sid, lambda: print_json(found)) == GOLDEN["find --json"]
    columns = ["snapshot_id", "type", "size", "mtime", "path"]
    assert _printed(sid, lambda: print_table(found, columns)) == GOLDEN["find"]


def _wire_entry(entry: Entry) -> common_pb2.SnapshotEntry:
    return _wire(agent_api_pb2.ListDirReply(entries=[entry_to_proto(entry)])).entries[0]
