"""Watches the database the server depends on, and restarts an embedded one that died.

A probe (``SELECT 1``) runs every ``interval`` seconds, and at once when an RPC meets
a database failure. While it fails, the server reports NOT_SERVING on the standard
health service and every RPC answers UNAVAILABLE with one sentence (see
``rpc.errors``). An embedded PostgreSQL found stopped is started again on the same
port, with a capped back-off between attempts and one clear log line per event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from comet.server.rpc.errors import one_line

log = logging.getLogger(__name__)

MIN_GAP = 0.2  # seconds: the least time between two probes


class ConnectionProbe:
    """``SELECT 1`` on a connection of its own, outside the server's pool, so that a
    pool drained by a burst of calls is never mistaken for a database that is away."""

    def __init__(self, url: str, *, connect_timeout: int = 3) -> None:
        self._url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._connect_timeout = connect_timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def __call__(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=self._connect_timeout
                )
            await self._conn.execute("SELECT 1")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


class Restartable(Protocol):
    def is_running(self) -> bool:
        """Whether the cluster's postmaster is alive (blocking; run off the loop)."""

    def restart(self) -> None:
        """Start the stopped cluster again on its port (blocking); raises on failure."""


@dataclass(frozen=True)
class SupervisorPolicy:
    interval: float = 1.0  # seconds between probes
    probe_timeout: float = 3.0
    restart_min: float = 1.0  # back-off between restart attempts: doubles up to max
    restart_max: float = 30.0


class DatabaseSupervisor:
    def __init__(
        self,
        probe: Callable[[], Awaitable[None]],
        *,
        embedded: Restartable | None = None,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        policy: SupervisorPolicy = SupervisorPolicy(),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._embedded = embedded
        self._on_change = on_change
        self._policy = policy
        self._monotonic = monotonic
        self._up = True
        self._wake = asyncio.Event()
        self._restart_delay = policy.restart_min
        self._next_restart = 0.0
        self.restarts = 0

    # ---------------------------------------------------------------- DatabaseWatcher

    @property
    def database_up(self) -> bool:
        return self._up

    def database_failed(self) -> None:
        self._wake.set()

    # ---------------------------------------------------------------- running

    async def check(self) -> bool:
        """One round: probe, report a change, restart a dead embedded cluster."""
        try:
            await asyncio.wait_for(self._probe(), self._policy.probe_timeout)
        except Exception as e:
            if self._up:
                log.error("the database is unavailable: %s", one_line(str(e))[:300])
                await self._set(False)
            if self._embedded is not None and self._monotonic() >= self._next_restart:
                await self._restart_embedded(self._monotonic())
            return False
        if not self._up:
            log.warning("the database is available again; serving")
            self._restart_delay = self._policy.restart_min
            self._next_restart = 0.0
            await self._set(True)
        return True

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._policy.interval)
            await asyncio.sleep(MIN_GAP)  # a burst of failing RPCs wakes it only once

    async def _restart_embedded(self, now: float) -> None:
        assert self._embedded is not None
        embedded = self._embedded
        if await asyncio.to_thread(embedded.is_running):
            return  # alive but not answering (starting up, overloaded): wait for it
        self.restarts += 1
        log.warning(
            "the embedded PostgreSQL has stopped; restarting it (attempt %d)", self.restarts
        )
        try:
            await asyncio.to_thread(embedded.restart)
        except Exception as e:
            self._next_restart = now + self._restart_delay
            log.error(
                "could not restart the embedded PostgreSQL (next attempt in %.0f s): %s",
                self._restart_delay,
                one_line(str(e))[:300],
            )
            self._restart_delay = min(self._restart_delay * 2, self._policy.restart_max)
            return
        log.warning("the embedded PostgreSQL is running again")
        self._wake.set()  # probe again at once

    async def _set(self, up: bool) -> None:
        self._up = up
        if self._on_change is not None:
            try:
                await self._on_change(up)
            except Exception:
                log.exception("could not publish the database state")
