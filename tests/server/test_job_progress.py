"""Held-back progress: pure progress updates of running jobs are written in batches,
while statuses, counters, final reports and log lines are written before the ack.
Against a real PostgreSQL with a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.app import Stores
from comet.server.store.jobs import JobRecord, JobStatus, JobStore
from comet.v1 import common_pb2, control_pb2
from tests.server.conftest import FakeClock, RpcServer, Session
from tests.server.test_jobs import report

pytestmark = pytest.mark.timeout(60)

SUCCESS = common_pb2.JOB_STATUS_SUCCESS


@pytest.fixture
async def alice(rpc: RpcServer) -> Session:
    await rpc.add_user("alice")
    return await rpc.device("alice")


async def send(rpc: RpcServer, who: Session, message: control_pb2.JobReport) -> int:
    ack = await rpc.agent.ReportJob(message, metadata=who.metadata)
    return ack.last_log_seq


async def stored_progress(jobs: JobStore, job_id: str) -> int:
    record, _ = await jobs.log(job_id)
    return record.progress.counter


async def test_progress_is_held_back_until_the_flush(
    rpc: RpcServer, alice: Session, stores: Stores, clock: FakeClock
) -> None:
    jobs = stores.jobs
    assert await send(rpc, alice, report("j1", seqs=(1,), progress=1)) == 1  # created
    assert await stored_progress(jobs, "j1") == 1
    clock.advance(seconds=30)
    for counter in (2, 4, 3):  # the last one arrives late: older than the held one
        assert await send(rpc, alice, report("j1", progress=counter)) == 1
    assert await stored_progress(jobs, "j1") == 1  # not written yet
    assert await jobs.flush_progress() == 1
    record, _ = await jobs.log("j1")
    assert record.progress.counter == 4 and record.progress.bytes_done == 400
    assert record.status is JobStatus.RUNNING
    assert await jobs.flush_progress() == 0  # nothing left

    # A stale counter flushed later does not win against the stored one.
    await send(rpc, alice, report("j1", progress=2))
    await jobs.flush_progress()
    assert await stored_progress(jobs, "j1") == 4


async def test_held_back_progress_is_written_within_the_flush_interval(
    rpc: RpcServer, alice: Session, stores: Stores
) -> None:
    await send(rpc, alice, report("j1", progress=1))
    flusher = asyncio.create_task(stores.jobs.run_progress_flusher(0.05))
    try:
        await send(rpc, alice, report("j1", progress=7))
        async with asyncio.timeout(5):
            while await stored_progress(stores.jobs, "j1") != 7:
                await asyncio.sleep(0.02)
    finally:
        flusher.cancel()


async def test_a_final_report_includes_and_overrides_held_back_progress(
    rpc: RpcServer, alice: Session, stores: Stores
) -> None:
    jobs = stores.jobs
    await send(rpc, alice, report("j1", progress=1))
    await send(rpc, alice, report("j1", progress=10))  # held back
    final = report("j1", status=SUCCESS, files=7, progress=9)
    final.final = True
    await send(rpc, alice, final)
    # Durable at once, with the held-back progress (the newer counter wins).
    record, _ = await jobs.log("j1")
    assert record.status is JobStatus.SUCCESS and record.counters.files == 7
    assert record.progress.counter == 10 and record.ended_at is not None
    # A late running report of the ended job is not held back, and a flush after
    # the final report changes nothing.
    await send(rpc, alice, report("j1", progress=11))
    assert await jobs.flush_progress() == 0
    record, _ = await jobs.log("j1")
    assert record.status is JobStatus.SUCCESS and record.progress.counter == 10

    # A final report newer than what was held back sets its own progress.
    await send(rpc, alice, report("j2", progress=1))
    await send(rpc, alice, report("j2", progress=5))
    await send(rpc, alice, report("j2", status=SUCCESS, progress=6))
    assert await jobs.flush_progress() == 0
    record, _ = await jobs.log("j2")
    assert record.status is JobStatus.SUCCESS and record.progress.counter == 6


async def test_status_counters_and_log_lines_are_never_held_back(
    rpc: RpcServer, alice: Session, stores: Stores
) -> None:
    jobs = stores.jobs
    await send(rpc, alice, report("j1", progress=1))
    await send(rpc, alice, report("j1", progress=2))  # held back
    assert await send(rpc, alice, report("j1", seqs=(1, 2), progress=3)) == 2
    record, lines = await jobs.log("j1")
    assert [line.message for line in lines] == ["line 1", "line 2"]
    assert record.progress.counter == 3  # written with the lines
    await send(rpc, alice, report("j1", progress=4, files=5))  # counters changed
    assert (await jobs.log("j1"))[0].counters.files == 5
    await send(rpc, alice, report("j1", status=common_pb2.JOB_STATUS_WAITING_TO_RETRY))
    assert (await jobs.log("j1"))[0].status is JobStatus.WAITING_TO_RETRY


async def test_a_crash_loses_at_most_the_unflushed_progress(
    rpc: RpcServer, alice: Session, stores: Stores, clock: FakeClock, engine: AsyncEngine
) -> None:
    await send(rpc, alice, report("j1", seqs=(1,), progress=1))
    await send(rpc, alice, report("j1", progress=2))
    await stores.jobs.flush_progress()  # a flush round
    await send(rpc, alice, report("j1", seqs=(2,), progress=3))
    await send(rpc, alice, report("j1", progress=4))  # held back, then the server dies

    restarted = JobStore(engine, clock)  # nothing flushed on the way down
    record, lines = await restarted.log("j1")
    assert record.status is JobStatus.RUNNING
    assert [line.seq for line in lines] == [1, 2]
    assert record.progress.counter == 3  # only the held-back update is lost
    # The device keeps reporting to the restarted server: the next report counts.
    await restarted.report(
        user_id=await rpc.stores.accounts.user_id("alice"),
        device_id=alice.device_id,
        job=record_with(record, 5),
        log=[],
    )
    assert await stored_progress(restarted, "j1") == 5


async def test_a_flush_leaves_jobs_that_ended_on_another_instance_alone(
    rpc: RpcServer, alice: Session, stores: Stores, clock: FakeClock, engine: AsyncEngine
) -> None:
    await send(rpc, alice, report("j1", progress=1))
    await send(rpc, alice, report("j1", progress=2))  # held back here
    other = JobStore(engine, clock)  # a second server instance
    record, _ = await other.log("j1")
    ended = record_with(record, 3, status=JobStatus.ERROR)
    await other.report(
        user_id=await rpc.stores.accounts.user_id("alice"),
        device_id=alice.device_id,
        job=ended,
        log=[],
    )
    assert await stores.jobs.flush_progress() == 0
    record, _ = await stores.jobs.log("j1")
    assert record.status is JobStatus.ERROR and record.progress.counter == 3


async def test_abandoning_silent_jobs_counts_held_back_reports(
    rpc: RpcServer, alice: Session, stores: Stores, clock: FakeClock
) -> None:
    await send(rpc, alice, report("j1", progress=1))
    clock.advance(minutes=9)
    await send(rpc, alice, report("j1", progress=2))  # held back: still a sign of life
    clock.advance(minutes=2)
    assert (await stores.maintenance.run_once()).abandoned == []
    assert await stored_progress(stores.jobs, "j1") == 2


def record_with(record: JobRecord, counter: int, *, status: JobStatus | None = None) -> JobRecord:
    """The job as its device would report it next: ``counter`` and maybe a new status."""
    return replace(
        record,
        status=status or record.status,
        progress=replace(record.progress, counter=counter),
        ended_at=None,
    )
