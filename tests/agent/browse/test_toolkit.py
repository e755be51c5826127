"""The snapshot toolkit's engine: diff by subtree id, dump, full-path globs, ``latest``
and prefixes, tags, stats and the retention explanation."""

from __future__ import annotations

import io
import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.browse import FindQuery, find
from comet.agent.browse.diff import Change, DiffTotals, diff_snapshots
from comet.agent.browse.dump import dump
from comet.agent.browse.refs import resolve_snapshot
from comet.agent.errors import BrowsePathError, SnapshotNotFoundError
from comet.agent.maintenance.retention import (
    RangeType,
    RetentionMode,
    RetentionPolicy,
    RetentionRange,
    RetentionRules,
    explain_retention,
    plan_retention,
)
from comet.agent.maintenance.stats import snapshot_stats
from comet.agent.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.storage.memory import MemoryStorage


@pytest.fixture
def repo() -> Repository:
    return Repository.init(MemoryStorage(), b"t" * 32)


def _tree(src: Path) -> None:
    for d in range(20):  # many directories that never change
        (src / "same" / f"d{d}").mkdir(parents=True)
        (src / "same" / f"d{d}" / "f.txt").write_text(f"constant {d}")
    (src / "docs").mkdir()
    (src / "docs" / "a.txt").write_text("one")
    (src / "docs" / "b.txt").write_text("bee")
    (src / "docs" / "gone.txt").write_text("bye")


def test_diff_skips_unchanged_subtrees_and_classifies(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    _tree(src)
    old = run_backup(repo, FilesSource([str(src)]), BackupOptions("i", "d")).snapshot_id
    (src / "docs" / "a.txt").write_text("one, changed")
    os.chmod(src / "docs" / "b.txt", 0o600)
    (src / "docs" / "gone.txt").unlink()
    (src / "docs" / "new").mkdir()
    (src / "docs" / "new" / "c.txt").write_text("sea")
    new = run_backup(repo, FilesSource([str(src)]), BackupOptions("i", "d", tags=("t1",)))
    totals = DiffTotals()
    changes = {
        e.path.removeprefix(str(src)): e.change
        for e in diff_snapshots(
            repo, repo.load_snapshot(old), repo.load_snapshot(new.snapshot_id), totals
        )
    }
    assert changes["/docs/a.txt"] == Change.MODIFIED
    assert changes["/docs/b.txt"] == Change.METADATA
    assert changes["/docs/gone.txt"] == Change.REMOVED
    assert changes["/docs/new"] == changes["/docs/new/c.txt"] == Change.ADDED
    assert not any(p.startswith("/same/d") for p in changes)
    # The 20 unchanged directories were never read: only the changed path's trees.
    depth = len(src.parts)
    assert totals.trees_read <= 2 * (depth + 2)
    assert (totals.added, totals.removed, totals.modified) == (2, 1, 1)
    assert totals.added_bytes == len("one, changed") + len("sea")


def test_refs_tags_dump_find_and_stats(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    _tree(src)
    first = run_backup(repo, FilesSource([str(src)]), BackupOptions("i", "d", tags=("daily",)))
    second = run_backup(repo, FilesSource([str(src)]), BackupOptions("i", "d"))
    other = run_backup(repo, FilesSource([str(src)]), BackupOptions("j", "e"))
    assert resolve_snapshot(repo, "latest", item_id="i").id == second.snapshot_id
    assert resolve_snapshot(repo, "latest~1", item_id="i").id == first.snapshot_id
    assert resolve_snapshot(repo, "latest", device_id="e").id == other.snapshot_id
    assert resolve_snapshot(repo, "latest", tags=("daily",)).id == first.snapshot_id
    assert resolve_snapshot(repo, first.snapshot_id.hex()[:10]).id == first.snapshot_id
    with pytest.raises(SnapshotNotFoundError, match="only 2 snapshots"):
        resolve_snapshot(repo, "latest~2", item_id="i")
    with pytest.raises(SnapshotNotFoundError, match="no snapshot id starts"):
        resolve_snapshot(repo, "ffffffffffff0")
    with pytest.raises(SnapshotNotFoundError, match="names no snapshot"):
        resolve_snapshot(repo, "yesterday")

    snap = repo.load_snapshot(first.snapshot_id)
    out = io.BytesIO()
    dump(repo, snap, str(src / "docs" / "a.txt"), out)
    assert out.getvalue() == b"one"
    out = io.BytesIO()
    dump(repo, snap, str(src / "docs"), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
        member = tar.extractfile(str(src / "docs" / "b.txt").lstrip("/"))
        assert member is not None and member.read() == b"bee"
    assert str(src / "docs" / "gone.txt").lstrip("/") in names
    assert not any("/same/" in n for n in names)
    with pytest.raises(BrowsePathError, match="not in the snapshot"):
        dump(repo, snap, str(src / "nope"), io.BytesIO())

    by_path = list(find(repo, [snap.id], FindQuery(path_glob="docs/*.txt")))
    assert sorted(e.path.rsplit("/", 1)[-1] for e in by_path) == ["a.txt", "b.txt", "gone.txt"]
    deep = list(find(repo, [snap.id], FindQuery(path_glob=str(src) + "/**/f.txt")))
    assert len(deep) == 20
    assert list(find(repo, [snap.id], FindQuery(path_glob="/docs/*.txt"))) == []
    negated = list(find(repo, [snap.id], FindQuery(path_glob="docs/[!g]*.txt")))
    assert sorted(e.path.rsplit("/", 1)[-1] for e in negated) == ["a.txt", "b.txt"]
    assert len(list(find(repo, [snap.id], FindQuery(path_glob="docs/?.txt")))) == 2
    assert list(find(repo, [snap.id], FindQuery(path_glob="docs/??.txt"))) == []
    classes = list(find(repo, [snap.id], FindQuery(path_glob="docs/[ab].txt")))
    assert sorted(e.path.rsplit("/", 1)[-1] for e in classes) == ["a.txt", "b.txt"]
    assert list(find(repo, [snap.id], FindQuery(path_glob="s*/d1"))) != []
    below = list(find(repo, [snap.id], FindQuery(), under=tuple(str(src / "docs").split("/")[1:])))
    assert len(below) == 3

    stats = snapshot_stats(repo, repo.list_snapshots())
    assert stats.totals.snapshots == 3
    assert stats.totals.restore_bytes == 3 * first_bytes(repo, first.snapshot_id)
    assert stats.totals.dedup_ratio == pytest.approx(3.0)
    assert [(g.device_id, g.item_id) for g in stats.groups] == [("d", "i"), ("e", "j")]


def first_bytes(repo: Repository, snapshot_id: bytes) -> int:
    return repo.load_snapshot(snapshot_id).total_bytes


def test_explain_retention_names_the_rules(repo: Repository) -> None:
    day = 86_400 * 10**9
    now = datetime(2026, 6, 10, 12, tzinfo=UTC)
    base = int(now.timestamp()) * 10**9
    snaps = [
        Snapshot("i", "d", "h", b"\0" * 32, base - k * day, base - k * day, id=bytes([k]) * 32)
        for k in range(5)
    ]
    policy = RetentionPolicy(
        RetentionMode.DELETE_EXCEPT,
        (
            RetentionRange(RangeType.MOST_RECENT_JOBS, jobs=1),
            RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_DAY, jobs=3),
        ),
    )
    rules = RetentionRules(vault_default=policy)
    verdicts = explain_retention(snaps, rules, now=now, tz=UTC)
    plan = plan_retention(snaps, rules, now=now, tz=UTC)
    assert {v.snapshot.id for v in verdicts if v.kept} == {s.id for s in plan.keep}
    newest = verdicts[-1]
    assert newest.reasons == ("keep-last 1", "keep-daily 3")
    assert [v.reasons for v in verdicts[:2]] == [(), ()]
