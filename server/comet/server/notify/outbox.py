"""The delivery queue in PostgreSQL and the worker that empties it.

Every instance runs a worker. A worker claims one due delivery with ``SELECT … FOR
UPDATE SKIP LOCKED`` and keeps that row locked while it sends, so no other instance
takes it; the outcome is written in the same transaction. A delivery is therefore
made once across instances; only a crash between the peer's acceptance and the
commit can repeat it (the mail or call then goes out again, never zero times).
Failures are retried with exponential back-off until ``max_attempts``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.clock import Clock
from comet.server.errors import ServerError
from comet.server.store.availability import log_background_failure
from comet.server.store.models import NotifyDelivery

log = logging.getLogger(__name__)

PENDING, SENT, FAILED = "pending", "sent", "failed"


class DeliveryError(ServerError):
    """A delivery failed; ``permanent`` ones are not retried (e.g. a deleted webhook)."""

    code = "delivery_failed"

    def __init__(self, message: str, *, permanent: bool = False, response: str = "") -> None:
        super().__init__(message)
        self.permanent = permanent
        self.response = response


@dataclass(frozen=True)
class NewDelivery:
    kind: str  # email | webhook
    target: str  # an address, or a webhook id
    event_key: str  # with kind and target: unique, so an event is queued once
    event_type: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    delivery_id: int
    kind: str
    target: str
    event_key: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    status: str = PENDING
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str = ""
    last_response: str = ""


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> str:
        """Delivers it; returns what the peer answered (kept in the delivery log).
        Raises DeliveryError when it was not delivered."""
        ...


class OutboxMetrics(Protocol):
    def delivered(self, kind: str, *, ok: bool) -> None: ...


@dataclass(frozen=True)
class OutboxPolicy:
    poll_seconds: float = 5.0
    first_retry_seconds: float = 30.0
    max_retry_seconds: float = 3600.0
    # 30 s doubling to an hour: about two days of trying.
    max_attempts: int = 50
    keep: timedelta = timedelta(days=30)
    send_timeout_seconds: float = 60.0


@dataclass
class _Wake:
    event: asyncio.Event = field(default_factory=asyncio.Event)


def _delivery(row: NotifyDelivery) -> Delivery:
    return Delivery(
        row.id,
        row.kind,
        row.target,
        row.event_key,
        row.event_type,
        dict(row.payload),
        row.attempts,
        row.status,
        row.created_at,
        row.delivered_at,
        row.next_attempt_at,
        row.last_error,
        row.last_response,
    )


class Outbox:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        senders: dict[str, Sender],
        policy: OutboxPolicy,
        *,
        metrics: OutboxMetrics | None = None,
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._senders = senders
        self._policy = policy
        self._metrics = metrics
        self._wake = _Wake()

    async def enqueue(self, deliveries: list[NewDelivery]) -> int:
        """Queues them; one already queued (same kind, target, event key) is skipped.
        Returns how many are new."""
        async with self._sessions() as s, s.begin():
            added = await self.insert(s, deliveries)
        if added:
            self.wake()
        return added

    def wake(self) -> None:
        """Something was queued: this instance's worker looks now, not at its next poll."""
        self._wake.event.set()

    async def insert(self, s: AsyncSession, deliveries: list[NewDelivery]) -> int:
        """``enqueue`` inside the caller's transaction (commits with it)."""
        if not deliveries:
            return 0
        now = self._clock.now()
        rows = [
            {
                "kind": d.kind,
                "target": d.target,
                "event_key": d.event_key,
                "event_type": d.event_type,
                "payload": d.payload,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for d in deliveries
        ]
        result = await s.execute(
            insert(NotifyDelivery)
            .values(rows)
            .on_conflict_do_nothing(constraint="uq_notify_outbox_event")
            .returning(NotifyDelivery.id)
        )
        return len(result.all())

    def _backoff(self, attempts: int) -> timedelta:
        seconds = min(
            self._policy.max_retry_seconds,
            self._policy.first_retry_seconds * 2 ** max(0, attempts - 1),
        )
        return timedelta(seconds=seconds * random.uniform(0.9, 1.1))

    async def deliver_one(self) -> bool:
        """Claims and makes one due delivery; False when none is due (or all due ones
        are being made by other instances)."""
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            row = await s.scalar(
                select(NotifyDelivery)
                .where(NotifyDelivery.status == PENDING, NotifyDelivery.next_attempt_at <= now)
                .order_by(NotifyDelivery.next_attempt_at, NotifyDelivery.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return False
            delivery = _delivery(row)
            attempts = row.attempts + 1
            values: dict[str, Any] = {"attempts": attempts}
            try:
                sender = self._senders.get(row.kind)
                if sender is None:
                    raise DeliveryError(f"no sender for {row.kind!r} deliveries", permanent=True)
                response = await asyncio.wait_for(
                    sender.send(delivery), self._policy.send_timeout_seconds
                )
            except (DeliveryError, TimeoutError) as e:
                permanent = isinstance(e, DeliveryError) and e.permanent
                message = str(e) or "timed out"
                gave_up = permanent or attempts >= self._policy.max_attempts
                values.update(
                    status=FAILED if gave_up else PENDING,
                    last_error=message[:2000],
                    next_attempt_at=self._clock.now() + self._backoff(attempts),
                )
                if isinstance(e, DeliveryError) and e.response:
                    values["last_response"] = e.response[:2000]
                log.warning(
                    "%s %s to %s, attempt %d%s: %s",
                    row.kind,
                    row.event_type,
                    row.target,
                    attempts,
                    " (giving up)" if gave_up else "",
                    message,
                )
                ok = False
            else:
                values.update(
                    status=SENT,
                    delivered_at=self._clock.now(),
                    last_error="",
                    last_response=response[:2000],
                )
                ok = True
            await s.execute(
                update(NotifyDelivery).where(NotifyDelivery.id == row.id).values(**values)
            )
        if self._metrics is not None:
            self._metrics.delivered(delivery.kind, ok=ok)
        return True

    async def run_forever(self) -> None:
        pruned_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            self._wake.event.clear()
            try:
                if loop.time() - pruned_at > 3600:
                    await self.prune()
                    pruned_at = loop.time()
                while await self.deliver_one():
                    pass
            except Exception as e:  # the database may be briefly away; try next round
                log_background_failure(log, "notification delivery failed", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.event.wait(), self._policy.poll_seconds)

    async def prune(self) -> int:
        """Forgets finished deliveries older than the policy keeps them."""
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                delete(NotifyDelivery).where(
                    NotifyDelivery.status != PENDING,
                    NotifyDelivery.created_at < self._clock.now() - self._policy.keep,
                )
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def depth(self) -> dict[str, int]:
        """Pending deliveries by kind."""
        async with self._sessions() as s:
            rows = await s.execute(
                select(NotifyDelivery.kind, func.count())
                .where(NotifyDelivery.status == PENDING)
                .group_by(NotifyDelivery.kind)
            )
            return {kind: int(n) for kind, n in rows.all()}

    async def deliveries(
        self, *, kind: str = "", target: str = "", limit: int = 100
    ) -> list[Delivery]:
        """The delivery log, newest first."""
        query = select(NotifyDelivery).order_by(NotifyDelivery.id.desc()).limit(limit or 100)
        if kind:
            query = query.where(NotifyDelivery.kind == kind)
        if target:
            query = query.where(NotifyDelivery.target == target)
        async with self._sessions() as s:
            return [_delivery(r) for r in await s.scalars(query)]
