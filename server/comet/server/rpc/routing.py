"""Delivers a remote command to a device wherever its live connection is: down the
stream when this instance holds it, else through PostgreSQL to the instance that
does (``comet.server.routing``). Without a command queue (one instance, tests) it
is local delivery only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from comet.server.clock import Clock, SystemClock
from comet.server.errors import DeviceOfflineError, offline
from comet.server.routing import (
    ANSWERED,
    CLOSE_PREFIX,
    COMMANDS_CHANNEL,
    DELIVERED,
    FAILED,
    PENDING,
    REPLIES_CHANNEL,
    CommandQueue,
)
from comet.server.rpc.live import LiveRegistry
from comet.v1 import control_pb2

log = logging.getLogger(__name__)


class CommandRouter:
    def __init__(
        self,
        registry: LiveRegistry,
        *,
        instance_id: str,
        queue: CommandQueue | None = None,
        claim_timeout: float = 5.0,
        poll_every: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self._registry = registry
        self._instance = instance_id
        self._queue = queue
        self._claim_timeout = claim_timeout
        self._poll_every = poll_every
        self._clock = clock or SystemClock()
        self._waiting: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ callers

    async def send(
        self, device_id: str, command: control_pb2.Command, *, timeout: float
    ) -> control_pb2.CommandReply:
        """The device's reply, or DeviceOfflineError naming the device when it is
        connected nowhere, its instance is gone, or it does not answer in time."""
        if self._queue is None or self._registry.get(device_id) is not None:
            return await self._registry.send(device_id, command, timeout=timeout)
        target = await self._remote_holder(device_id)
        return await self._send_remote(self._queue, target, device_id, command, timeout)

    async def drop(self, device_id: str) -> None:
        """End the device's live connection (the agent reconnects)."""
        if self._registry.get(device_id) is not None:
            self._registry.close_device(device_id)
            return
        if self._queue is None:
            raise DeviceOfflineError(offline(device_id))
        await self._remote_holder(device_id)
        await self._queue.announce_close(device_id)

    async def close_everywhere(self, device_id: str) -> None:
        """Close the device's stream on whichever instance holds it (revoked device,
        deleted user); no error when it is connected nowhere."""
        self._registry.close_device(device_id)
        if self._queue is not None:
            await self._queue.announce_close(device_id)

    async def _remote_holder(self, device_id: str) -> str:
        assert self._queue is not None
        holder = await self._queue.holder(device_id)
        if holder is None or holder == self._instance:
            raise DeviceOfflineError(offline(device_id))
        if not await self._queue.instance_running(holder):
            raise DeviceOfflineError(
                f"device {device_id} is not connected (the server instance that held its "
                "connection has stopped)"
            )
        return holder

    async def _send_remote(
        self,
        queue: CommandQueue,
        target: str,
        device_id: str,
        command: control_pb2.Command,
        timeout: float,
    ) -> control_pb2.CommandReply:
        request_id = command.request_id or str(uuid.uuid4())
        command.request_id = request_id
        woken = asyncio.Event()
        self._waiting[request_id] = woken
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await queue.submit(
                request_id=request_id,
                device_id=device_id,
                origin=self._instance,
                target=target,
                command=command.SerializeToString(),
                timeout_seconds=timeout,
            )
            while True:
                # Notifications wake us early; the poll covers any that were missed.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self._poll_every)
                woken.clear()
                outcome = await queue.outcome(request_id)
                elapsed = loop.time() - started
                if outcome.status == ANSWERED and outcome.reply is not None:
                    return control_pb2.CommandReply.FromString(outcome.reply)
                if outcome.status == FAILED:
                    raise DeviceOfflineError(outcome.error or f"device {device_id} did not reply")
                if outcome.status == PENDING and elapsed > self._claim_timeout:
                    if await queue.expire(request_id):
                        raise DeviceOfflineError(
                            f"device {device_id} is not reachable: the server instance "
                            "holding its connection did not take the command"
                        )
                elif outcome.status not in (PENDING, DELIVERED):
                    raise DeviceOfflineError(f"device {device_id} did not reply")
                if elapsed > timeout:
                    raise DeviceOfflineError(
                        f"device {device_id} did not reply within {timeout:.0f} s"
                    )
        finally:
            self._waiting.pop(request_id, None)

    # ------------------------------------------------------------------ notifications

    def on_notify(self, channel: str, payload: str) -> None:
        """Handles one notification (called by the listener, on the event loop)."""
        if channel == COMMANDS_CHANNEL and payload.startswith(CLOSE_PREFIX):
            self._registry.close_device(payload.removeprefix(CLOSE_PREFIX))
            return
        instance, _, request_id = payload.partition(":")
        if instance != self._instance or not request_id:
            return
        if channel == COMMANDS_CHANNEL:
            self._spawn(self._forward(request_id))
        elif channel == REPLIES_CHANNEL:
            woken = self._waiting.get(request_id)
            if woken is not None:
                woken.set()

    async def resync(self) -> None:
        """Pick up commands announced while the listener was not listening."""
        if self._queue is None:
            return
        for request_id in await self._queue.pending_for(self._instance):
            self._spawn(self._forward(request_id))
        for woken in self._waiting.values():
            woken.set()

    async def prune(self, *, keep: timedelta = timedelta(days=1)) -> None:
        if self._queue is not None:
            await self._queue.prune(self._clock.now() - keep)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, request_id: str) -> None:
        """Deliver a command another instance stored for a device connected here."""
        assert self._queue is not None
        try:
            claimed = await self._queue.claim(request_id, self._instance)
            if claimed is None:
                return
            command = control_pb2.Command.FromString(claimed.command)
            try:
                reply = await self._registry.send(
                    claimed.device_id, command, timeout=claimed.timeout_seconds
                )
            except DeviceOfflineError as e:
                await self._queue.answer(
                    request_id, origin=claimed.origin_instance, reply=None, error=e.message
                )
                return
            await self._queue.answer(
                request_id, origin=claimed.origin_instance, reply=reply.SerializeToString()
            )
        except Exception:  # the database may be briefly away; the sender times out
            log.exception("could not forward remote command %s", request_id)
