"""The PostgreSQL side of routing remote commands between server instances.

A command for a device whose live connection another instance holds is stored in
``remote_commands`` and announced with ``NOTIFY comet_commands, '<instance>:<request_id>'``;
the holding instance claims it, forwards it down the stream, stores the reply and
announces it with ``NOTIFY comet_replies, '<origin instance>:<request_id>'``. A
``close:<device_id>`` on ``comet_commands`` asks every instance to drop that device's
stream (revoked devices, deleted users).

This module knows SQL and psycopg, not gRPC or protobuf: commands and replies are
opaque bytes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from comet.server.clock import Clock
from comet.server.store.models import Device, RemoteCommand

log = logging.getLogger(__name__)

COMMANDS_CHANNEL = "comet_commands"
REPLIES_CHANNEL = "comet_replies"
CLOSE_PREFIX = "close:"

PENDING = "pending"
DELIVERED = "delivered"
ANSWERED = "answered"
FAILED = "failed"
EXPIRED = "expired"


def listener_name(instance: str) -> str:
    """The ``application_name`` of an instance's LISTEN connection: while it is
    present in ``pg_stat_activity`` the instance is running."""
    return f"comet-server:{instance}"


@dataclass(frozen=True)
class ClaimedCommand:
    request_id: str
    device_id: str
    origin_instance: str
    command: bytes
    timeout_seconds: float


@dataclass(frozen=True)
class CommandOutcome:
    status: str
    reply: bytes | None
    error: str


class CommandQueue:
    """Rows of ``remote_commands`` and the notifications that go with them. Each
    state change is one conditional UPDATE, so two instances never both win it."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def holder(self, device_id: str) -> str | None:
        """The instance that holds the device's live connection, as the database last
        heard; None for a device connected nowhere, revoked or unknown. (Its
        ``last_seen`` is not consulted: agents may be quiet for longer than the
        server's heartbeat, and a dead stream shows up as a failed delivery.)"""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Device.connected_instance, Device.revoked_at).where(
                        Device.id == device_id
                    )
                )
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        instance: str | None = row.connected_instance
        return instance

    async def instance_running(self, instance: str) -> bool:
        """Whether ``instance`` is up: its LISTEN connection is open."""
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": listener_name(instance)},
            )
        return bool(found)

    async def submit(
        self,
        *,
        request_id: str,
        device_id: str,
        origin: str,
        target: str,
        command: bytes,
        timeout_seconds: float,
    ) -> None:
        """Store a command and announce it to ``target`` (on commit, atomically)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(RemoteCommand).values(
                    request_id=request_id,
                    device_id=device_id,
                    origin_instance=origin,
                    target_instance=target,
                    command=command,
                    status=PENDING,
                    error="",
                    timeout_seconds=timeout_seconds,
                    created_at=self._clock.now(),
                )
            )
            await _notify(conn, COMMANDS_CHANNEL, f"{target}:{request_id}")

    async def announce_close(self, device_id: str) -> None:
        async with self._engine.begin() as conn:
            await _notify(conn, COMMANDS_CHANNEL, f"{CLOSE_PREFIX}{device_id}")

    async def claim(self, request_id: str, instance: str) -> ClaimedCommand | None:
        """Take a pending command addressed to ``instance``; None if it is not (or no
        longer) pending, e.g. its sender already gave up on it."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(RemoteCommand)
                    .where(
                        RemoteCommand.request_id == request_id,
                        RemoteCommand.target_instance == instance,
                        RemoteCommand.status == PENDING,
                    )
                    .values(status=DELIVERED)
                    .returning(
                        RemoteCommand.device_id,
                        RemoteCommand.origin_instance,
                        RemoteCommand.command,
                        RemoteCommand.timeout_seconds,
                    )
                )
            ).first()
            if row is not None:
                await _notify(conn, REPLIES_CHANNEL, f"{row.origin_instance}:{request_id}")
        if row is None:
            return None
        return ClaimedCommand(
            request_id, row.device_id, row.origin_instance, row.command, row.timeout_seconds
        )

    async def pending_for(self, instance: str) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.scalars(
                select(RemoteCommand.request_id).where(
                    RemoteCommand.target_instance == instance, RemoteCommand.status == PENDING
                )
            )
            return list(rows)

    async def answer(
        self, request_id: str, *, origin: str, reply: bytes | None, error: str = ""
    ) -> None:
        """Store the device's reply (or why there is none) and wake the sender."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(RemoteCommand)
                .where(RemoteCommand.request_id == request_id)
                .values(
                    status=ANSWERED if reply is not None else FAILED,
                    reply=reply,
                    error=error,
                    answered_at=self._clock.now(),
                )
            )
            await _notify(conn, REPLIES_CHANNEL, f"{origin}:{request_id}")

    async def outcome(self, request_id: str) -> CommandOutcome:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(RemoteCommand.status, RemoteCommand.reply, RemoteCommand.error).where(
                        RemoteCommand.request_id == request_id
                    )
                )
            ).first()
        if row is None:
            return CommandOutcome(EXPIRED, None, "the command was removed")
        return CommandOutcome(row.status, row.reply, row.error)

    async def expire(self, request_id: str) -> bool:
        """Give up on a command nobody claimed; False if it was claimed meanwhile."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(RemoteCommand)
                .where(RemoteCommand.request_id == request_id, RemoteCommand.status == PENDING)
                .values(status=EXPIRED, answered_at=self._clock.now())
            )
        return bool(result.rowcount)

    async def prune(self, older_than: datetime) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(RemoteCommand).where(RemoteCommand.created_at < older_than)
            )
        return int(result.rowcount)


async def _notify(conn: AsyncConnection, channel: str, payload: str) -> None:
    await conn.execute(select(func.pg_notify(channel, payload)))


def libpq_url(url: str) -> str:
    """A URL psycopg connects with directly (SQLAlchemy's driver suffix removed)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


NotifyHandler = Callable[[str, str], None]


class NotificationListener:
    """A dedicated psycopg connection LISTENing on the routing channels. It
    reconnects when the connection drops; ``on_connected`` runs after every
    (re)connect so that work announced while it was away is picked up."""

    def __init__(
        self,
        url: str,
        channels: Sequence[str],
        on_notify: NotifyHandler,
        *,
        on_connected: Callable[[], Awaitable[None]],
        application_name: str,
        check_every: float = 15.0,
        retry_min: float = 0.5,
        retry_max: float = 10.0,
    ) -> None:
        self._url = libpq_url(url)
        self._channels = list(channels)
        self._on_notify = on_notify
        self._on_connected = on_connected
        self._application_name = application_name
        self._check_every = check_every
        self._retry_min = retry_min
        self._retry_max = retry_max
        self.listening = asyncio.Event()
        self._conn: psycopg.AsyncConnection[object] | None = None

    async def run_forever(self) -> None:
        delay = self._retry_min
        while True:
            try:
                await self._listen_once()
            except (psycopg.Error, OSError) as e:
                log.warning("notification listener lost its connection: %s", e)
            finally:
                self.listening.clear()
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                    self._conn = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def drop_connection(self) -> None:
        """Close the current connection (tests use it to exercise reconnecting)."""
        if self._conn is not None:
            await self._conn.close()

    async def _listen_once(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, application_name=self._application_name
        )
        self._conn = conn
        for channel in self._channels:
            await conn.execute(f'LISTEN "{channel}"')
        self.listening.set()
        await self._on_connected()
        while True:
            async for notify in conn.notifies(timeout=self._check_every):
                try:
                    self._on_notify(notify.channel, notify.payload)
                except Exception:  # one bad payload must not stop the listener
                    log.exception("could not handle notification %r", notify.payload)
            # Quiet for a while: make sure the connection is still there.
            await conn.execute("SELECT 1")
