"""The audit log: who did what, from where, and whether it worked.

Rows are bounded: every field a caller can influence is cut to a fixed size, so no
request can make a row large. Events are kept for a configured period and then
pruned. Failed attempts are also what login throttling counts (``throttle``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from comet.server import validation
from comet.server.clock import Clock
from comet.server.store import partitions
from comet.server.store.models import AuditEvent
from comet.server.throttle import FailureCount

log = logging.getLogger(__name__)

# Audit rows keep at most this much of each caller-influenced field.
AUDIT_FIELD_MAX = 256
AUDIT_DETAILS_MAX = 2048


class AuditLog:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Single statements on the hot path (failed logins) need no transaction.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._clock = clock

    async def record(
        self,
        actor: str,
        action: str,
        target: str,
        *,
        source: str = "",
        success: bool = True,
        details: str = "",
    ) -> None:
        """Records one event, its fields cut to their bounds and cleaned of NUL and
        other control characters (line breaks kept in the details)."""
        cut = validation.clean
        async with self._autocommit.connect() as conn:
            await conn.execute(
                insert(AuditEvent).values(
                    time=self._clock.now(),
                    actor=cut(actor, AUDIT_FIELD_MAX),
                    action=cut(action, AUDIT_FIELD_MAX),
                    target=cut(target, AUDIT_FIELD_MAX),
                    source_address=cut(source, AUDIT_FIELD_MAX),
                    success=success,
                    details=cut(details, AUDIT_DETAILS_MAX, lines=True),
                )
            )

    async def list(
        self, *, action: str = "", limit: int = 100, before_id: int = 0
    ) -> list[AuditEvent]:
        """Newest first; ``before_id`` pages on (events older than that one)."""
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit or 100)
        if action:
            query = query.where(AuditEvent.action == action)
        if before_id > 0:
            query = query.where(AuditEvent.id < before_id)
        async with self._sessions() as s:
            return list((await s.scalars(query)).all())

    async def prune(self, retention: timedelta) -> int:
        """Deletes events older than ``retention``; returns how many rows were deleted
        one by one. The table is partitioned by month: months ahead are created here,
        and months wholly past retention are dropped whole (not counted)."""
        now = self._clock.now()
        await partitions.ensure_ahead(self._engine, "audit_events", now)
        dropped = await partitions.drop_before(self._engine, "audit_events", now - retention)
        if dropped:
            log.info("audit: partitions past retention dropped: %s", ", ".join(dropped))
        async with self._autocommit.connect() as conn:
            result = await conn.execute(delete(AuditEvent).where(AuditEvent.time < now - retention))
        return int(result.rowcount)

    async def failures(
        self, actions: tuple[str, ...], since: datetime, *, source: str, target: str
    ) -> tuple[FailureCount, FailureCount]:
        """Failed ``actions`` from ``source`` since ``since``: those against
        ``target``, and all of them (one query)."""
        mine = AuditEvent.target == target
        query = select(
            func.count().filter(mine),
            func.max(AuditEvent.time).filter(mine),
            func.count(),
            func.max(AuditEvent.time),
        ).where(
            AuditEvent.action.in_(actions),
            AuditEvent.success.is_(False),
            AuditEvent.time >= since,
            AuditEvent.source_address == source,
        )
        async with self._autocommit.connect() as conn:
            pair_count, pair_latest, all_count, all_latest = (await conn.execute(query)).one()
        return (
            FailureCount(int(pair_count or 0), pair_latest),
            FailureCount(int(all_count or 0), all_latest),
        )
