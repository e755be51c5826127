"""Ships job records and log lines to the server from the durable outbox (the job
store's ``dirty`` marks), so a server outage or an agent crash loses no history.
Reports are idempotent on the server, so sending one twice is harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from comet.agent.convert import job_to_proto, log_to_proto
from comet.agent.jobs.store import JobStore
from comet.agent.state import AgentState
from comet.agent.transport import aio_channel, rpc_error_message
from comet.v1 import control_pb2, control_pb2_grpc

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, store: JobStore, state: AgentState, *, interval: float = 1.0) -> None:
        self._store = store
        self._state = state
        self._interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_error = ""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def poke(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def flush(self) -> bool:
        """Send everything pending once; True when nothing is left."""
        login = self._state.load_login()
        if not login.logged_in:
            return False
        channel = aio_channel(login.server)
        stub = control_pb2_grpc.AgentServiceStub(channel)
        metadata = (("authorization", f"Bearer {login.device_token}"),)
        try:
            while True:
                pending = self._store.dirty()
                if not pending:
                    return True
                for job, sent_seq in pending:
                    if job.device_id != login.device_id:
                        # Recorded under an earlier login of this machine: it belongs
                        # to that device, which this credential may not report for.
                        self._store.mark_sent(job, sent_seq)
                        continue
                    entries = self._store.log(job.job_id, after_seq=sent_seq)[:500]
                    await stub.ReportJob(
                        control_pb2.JobReport(
                            job=job_to_proto(job),
                            log=[log_to_proto(e) for e in entries],
                            final=bool(job.ended_ns) and not job.status.running,
                        ),
                        metadata=metadata,
                        timeout=30,
                    )
                    self._store.mark_sent(job, entries[-1].seq if entries else sent_seq)
        except grpc.aio.AioRpcError as e:
            self.last_error = rpc_error_message(e)
            return False
        finally:
            await channel.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.flush()
            except Exception:  # keep shipping later; the records are safe on disk
                log.exception("job outbox")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
