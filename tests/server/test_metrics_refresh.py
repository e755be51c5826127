"""The metrics refresher counts a partition of ``jobs`` again only once its rows
changed (inserted, updated, deleted), and still counts every job row; per-device
gauges follow their devices (changed, and gone when a device is revoked)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.metrics import MetricsRefresher, ServerMetrics

pytestmark = pytest.mark.timeout(60)


async def _sql(engine: AsyncEngine, *statements: str) -> None:
    """Runs the statements and has their statistics flushed at commit (the refresher
    reads them to know which partitions changed)."""
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))


def _jobs(m: ServerMetrics, status: str) -> float | None:
    return m.registry.get_sample_value("comet_jobs", {"classification": "BACKUP", "status": status})


async def _refresh_until(refresher: MetricsRefresher, ok: Callable[[], bool]) -> int:
    """Refreshes until ``ok()`` holds (statistics arrive a moment after a commit);
    how many partitions the rounds counted."""
    counted = 0
    deadline = time.monotonic() + 10
    while True:
        await refresher.refresh()
        counted += refresher.partitions_counted
        if ok() or time.monotonic() > deadline:
            return counted
        await asyncio.sleep(0.2)


async def test_job_counts_recount_only_changed_partitions(engine: AsyncEngine) -> None:
    await _sql(
        engine,
        "INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, created_at,"
        " profile, profile_version) VALUES ('u1', 'alice', 1, '{}', 'h', 's', now(), '{}', 1)",
        "INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,"
        " registered_at, token_hash, last_good_backup_at) VALUES"
        " ('d1', 'u1', 'laptop', '', '', '', '', now(), 't1', NULL),"
        " ('d2', 'u1', 'desk', '', '', '', '', now(), 't2', NULL)",
        # Long ago and two months ahead: two partitions (legacy, and a month's or default).
        "CREATE TEMP TABLE seeded AS SELECT 'j' || n AS job_id,"
        " CASE WHEN n <= 3 THEN timestamptz '2020-01-10' ELSE now() + interval '2 months' END"
        " AS started_at"
        " FROM generate_series(1, 5) n",
        "INSERT INTO job_ids (job_id, user_id, started_at) SELECT job_id, 'u1', started_at"
        " FROM seeded",
        "INSERT INTO jobs (job_id, user_id, device_id, classification, status, started_at,"
        " last_report_at) SELECT job_id, 'u1', 'd1', 4001, 5000, started_at, now() FROM seeded",
        "UPDATE devices SET last_good_backup_at = timestamptz '2026-01-05 10:00Z'",
    )
    m = ServerMetrics()
    refresher = MetricsRefresher(m, engine, connected=lambda: 0)
    await refresher.refresh()
    assert _jobs(m, "SUCCESS") == 5
    gauge = "comet_device_last_good_backup_timestamp_seconds"
    labels = {"device_id": "d1", "device_name": "laptop", "user": "alice"}
    assert m.registry.get_sample_value(gauge, labels) == 1767607200.0

    # Nothing changed: no partition is read again; the counts stay.
    assert await _refresh_until(refresher, lambda: True) == 0
    assert _jobs(m, "SUCCESS") == 5

    # One old job fails, one new one is deleted: exactly their partitions are read.
    await _sql(engine, "UPDATE jobs SET status = 7002 WHERE job_id = 'j1'")
    await _sql(engine, "DELETE FROM jobs WHERE job_id = 'j5'")
    counted = await _refresh_until(
        refresher, lambda: (_jobs(m, "SUCCESS"), _jobs(m, "ERROR")) == (3, 1)
    )
    assert (_jobs(m, "SUCCESS"), _jobs(m, "ERROR")) == (3, 1)
    assert 2 <= counted <= 4  # each changed partition once (twice if its statistics lagged)

    await _sql(engine, "UPDATE devices SET revoked_at = now() WHERE id = 'd1'")
    await refresher.refresh()
    assert m.registry.get_sample_value(gauge, labels) is None
    desk = {"device_id": "d2", "device_name": "desk", "user": "alice"}
    assert m.registry.get_sample_value(gauge, desk) == 1767607200.0
