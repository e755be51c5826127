"""The audit table partitioned by month: the migration converts an existing database
in place (its rows stay, queries keep working), the maintenance task creates months
ahead and drops whole months past retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from comet.server.store.audit import AuditLog
from comet.server.store.database import alembic_config, create_engine, migrate
from comet.server.store.partitions import drop_before, ensure_ahead, month_start, partitions
from tests.fixtures.postgres import PostgresCluster

pytestmark = pytest.mark.timeout(60)


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_month_bounds_are_utc_months() -> None:
    when = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert month_start(when) == datetime(2026, 12, 1, tzinfo=UTC)
    assert month_start(when, 1) == datetime(2027, 1, 1, tzinfo=UTC)
    assert month_start(when, -12) == datetime(2025, 12, 1, tzinfo=UTC)


async def test_an_existing_audit_table_is_partitioned_in_place(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.empty_database()
    migrate(url, "0012")
    now = datetime.now(UTC)
    old = now - timedelta(days=400)
    with psycopg.connect(url) as conn:
        for n in range(200):
            conn.execute(
                "INSERT INTO audit_events (time, actor, action, target, source_address,"
                " success, details) VALUES (%s, 'admin', 'login', %s, '10.0.0.1', %s, '')",
                (old + timedelta(days=2 * n), f"user{n % 5}", n % 3 == 0),
            )
    migrate(url)
    with psycopg.connect(url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'audit_events'")
        assert kind.fetchone() == ("p",)
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (200,)
        # History queries still find their rows, and a bounded one skips old months.
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT * FROM audit_events WHERE action = 'login'"
                " AND target = 'user1' AND time > now() - interval '10 days'"
            ).fetchall()
        )
        assert "audit_events_legacy" in plan or "audit_events_p" in plan, plan
    engine = create_engine(url, pool_size=2)
    try:
        later = month_start(now, 2) + timedelta(days=3)  # lands in a month's own partition
        log = AuditLog(engine, FixedClock(later))
        await log.record("admin", "login", "user9", source="10.0.0.2", success=True)
        listed = await log.list(action="login", limit=500)
        assert len(listed) == 201 and listed[0].target == "user9"  # newest first

        # Months ahead exist (the migration made three); making them again is a no-op.
        assert await ensure_ahead(engine, "audit_events", now, months=2) == 0
        far = month_start(now, 6)
        assert await ensure_ahead(engine, "audit_events", far, months=0) == 1
        async with engine.connect() as conn:
            names = [p.name for p in await partitions(conn, "audit_events")]
        assert f"audit_events_p{far:%Y%m}" in names and "audit_events_default" in names

        # Retention past the legacy partition's end drops it whole; newer rows stay.
        assert await drop_before(engine, "audit_events", month_start(now, -1)) == []
        assert await log.prune(timedelta(days=30)) == 0  # the legacy month went whole
        async with engine.connect() as conn:
            names = [p.name for p in await partitions(conn, "audit_events")]
        assert "audit_events_legacy" not in names
        assert f"audit_events_p{month_start(later, 3):%Y%m}" in names  # made ahead
        remaining = await log.list(limit=500)
        assert [e.target for e in remaining] == ["user9"]
    finally:
        await engine.dispose()
    command.downgrade(alembic_config(url), "0012")
    with psycopg.connect(url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'audit_events'")
        assert kind.fetchone() == ("r",)
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (1,)
