"""Monthly partitions of the tables partitioned by time (``audit_events`` by
``time``, ``jobs`` by ``started_at``): created a few months ahead, and whole months
past retention detached and dropped, which costs nothing like a DELETE of millions
of rows and leaves no bloat. (Jobs have no retention, so their months are only
created, by the job maintenance task.)

Month bounds are UTC. Partitions are named ``<table>_pYYYYMM``; the partition an
existing database was converted with (``<table>_legacy``, everything before the
migration's next month) goes once its upper bound is past retention. Any instance
may run this: creation tolerates a partition made meanwhile by another one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

PARTITIONED = ("audit_events", "jobs")
_UPPER = re.compile(r"TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    name: str
    upper: datetime | None  # None: the DEFAULT partition or an unbounded one


def attach_legacy_sql(table: str, column: str, key: str, months_ahead: int) -> str:
    """The migrations' conversion of an existing ``<table>_legacy`` (the old table,
    renamed) into the partition of everything before next month of the partitioned
    ``table`` (by ``column``, keyed on (``key``, ``column``)), plus ``months_ahead``
    months after it. Run with the time zone set to UTC. Migrations 0013 and 0016 use
    it: its output must not change."""
    legacy = f"{table}_legacy"
    return f"""
        DO $$
        DECLARE
            bound timestamptz := date_trunc('month', greatest(
                coalesce((SELECT max({column}) FROM {legacy}), now()), now()
            )) + interval '1 month';
            m timestamptz;
        BEGIN
            EXECUTE format(
                'ALTER TABLE {legacy} ADD CONSTRAINT {legacy}_range'
                ' CHECK ({column} < %L) NOT VALID', bound);
            ALTER TABLE {legacy} VALIDATE CONSTRAINT {legacy}_range;
            -- The partitions' key is ({key}, {column}): the old key on {key} alone goes.
            CREATE UNIQUE INDEX {legacy}_{key}_{column} ON {legacy} ({key}, {column});
            ALTER TABLE {legacy} DROP CONSTRAINT {legacy}_pkey;
            ALTER TABLE {legacy} ADD CONSTRAINT {legacy}_pkey
                PRIMARY KEY USING INDEX {legacy}_{key}_{column};
            EXECUTE format(
                'ALTER TABLE {table} ATTACH PARTITION {legacy}'
                ' FOR VALUES FROM (MINVALUE) TO (%L)', bound);
            FOR i IN 0..{months_ahead} - 1 LOOP
                m := bound + make_interval(months => i);
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF {table} FOR VALUES FROM (%L) TO (%L)',
                    '{table}_p' || to_char(m, 'YYYYMM'), m, m + interval '1 month');
            END LOOP;
        END $$
        """


def month_start(when: datetime, months: int = 0) -> datetime:
    """The first instant (UTC) of the month ``months`` after ``when``'s month."""
    when = when.astimezone(UTC)
    index = when.year * 12 + when.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


async def partitions(conn: AsyncConnection, table: str) -> list[Partition]:
    rows = await conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    )
    found = []
    for name, bound in rows.all():
        match = _UPPER.search(bound or "")
        upper = datetime.fromisoformat(match.group(1)).astimezone(UTC) if match else None
        found.append(Partition(name, upper))
    return sorted(
        found, key=lambda p: (p.upper is None, p.upper or datetime.min.replace(tzinfo=UTC))
    )


async def ensure_ahead(engine: AsyncEngine, table: str, now: datetime, months: int = 3) -> int:
    """Create the partitions of this month and the next ``months``; how many were new."""
    created = 0
    for ahead in range(months + 1):
        start, end = month_start(now, ahead), month_start(now, ahead + 1)
        name = f"{table}_p{start:%Y%m}"
        async with engine.begin() as conn:
            existing = await partitions(conn, table)
            if any(p.name == name for p in existing) or any(
                p.upper is not None and p.upper > start and p.name.endswith("_legacy")
                for p in existing
            ):
                continue
            try:
                await conn.execute(
                    text(
                        f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}"'
                        f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                    )
                )
                created += 1
            except DBAPIError as e:
                # Rows of that month already sit in the DEFAULT partition (nobody made
                # it in time): they stay reachable there; say so and go on.
                log.warning("cannot create partition %s: %s", name, e.orig)
    return created


async def drop_before(engine: AsyncEngine, table: str, cutoff: datetime) -> list[str]:
    """Detach and drop every partition wholly older than ``cutoff``; their names."""
    dropped = []
    async with engine.begin() as conn:
        for partition in await partitions(conn, table):
            if partition.upper is None or partition.upper > cutoff:
                continue
            await conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{partition.name}"'))
            await conn.execute(text(f'DROP TABLE "{partition.name}"'))
            dropped.append(partition.name)
    return dropped
