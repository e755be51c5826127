"""The dashboard's short lists come from migration 0019's partial indexes in their
order (the first failed and overdue devices, the largest buckets): PostgreSQL must
find the index's predicate in the queries as the stores send them."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.app import Stores
from comet.server.clock import SystemClock
from comet.server.notify.events import ERROR_STATUSES
from comet.server.store.database import _MIGRATIONS
from comet.server.store.overview import OverviewStore

pytestmark = pytest.mark.timeout(60)


def test_the_indexes_name_the_error_statuses() -> None:
    path = Path(_MIGRATIONS) / "versions" / "0019_search_trigrams.py"
    spec = importlib.util.spec_from_file_location("m0019", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert f"({', '.join(str(int(x)) for x in sorted(ERROR_STATUSES))})" == module.ERROR_CODES


async def _plans(engine: AsyncEngine, run: Any, index_only: AsyncEngine) -> str:
    """EXPLAIN (with ``index_only``) of every statement ``run()`` sends on ``engine``."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not statement.startswith("EXPLAIN"):
            sent.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await run()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    out = []
    async with index_only.connect() as conn:
        for statement, params in sent:
            rows = await conn.exec_driver_sql("EXPLAIN " + statement, params)
            out += [row[0] for row in rows]
    return "\n".join(out)


async def test_dashboard_lists_read_their_partial_indexes(
    engine: AsyncEngine, index_only: AsyncEngine, stores: Stores
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, created_at,"
                " profile, profile_version) VALUES ('u1', 'alice', 1, '{}', 'h', 's', now(),"
                " '{}', 1)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,"
                " registered_at, token_hash, backup_scheduled, last_backup_status,"
                " last_backup_ended_at) SELECT 'd' || n, 'u1', 'd' || n, '', '', '', '',"
                " now() - interval '10 days', 't' || n, true,"
                " CASE WHEN n % 2 = 0 THEN 7002 END, now() - n * interval '1 hour'"
                " FROM generate_series(1, 6) n"
            )
        )
    overview = OverviewStore(index_only, SystemClock(), overdue_after=timedelta(hours=26))
    attention = await overview.needing_attention(limit=4)
    assert attention.total == 6
    assert [d.device_id for d in attention.devices] == ["d2", "d4", "d6", "d1"]
    plans = await _plans(index_only, lambda: overview.needing_attention(limit=4), index_only)
    assert "ix_devices_failed_attention" in plans and "ix_devices_overdue_attention" in plans

    largest = lambda: stores.buckets.page_buckets(offset=0, limit=10, largest_first=True)  # noqa: E731
    assert "ix_buckets_used_bytes" in await _plans(engine, largest, index_only)
