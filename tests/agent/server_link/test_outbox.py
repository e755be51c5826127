"""The agent's outbox against a real server: refused, failing and good records mixed.

A record the server refuses for good is kept on the device with its reason and never
holds up the ones after it; a record the server fails on is retried alone; while the
server is away the outbox waits and loses nothing; a repeat never duplicates."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet.agent.backoff import Backoff
from comet.agent.jobs.codes import Classification, Severity, Status
from comet.agent.jobs.outbox import Outbox
from comet.agent.jobs.record import JobRecord, LogEntry
from comet.agent.jobs.store import JobStore as AgentJobStore
from comet.agent.state import AgentState, LoginState
from comet.server.errors import DatabaseUnavailableError
from comet.server.store.jobs import JobQuery
from comet.server.store.jobs import JobStore as ServerJobStore
from tests.server.conftest import RpcServer, Session


@pytest.fixture
async def alice(rpc: RpcServer) -> Session:
    await rpc.add_user("alice")
    return await rpc.device("alice")


@pytest.fixture
def agent(tmp_path: Path, rpc: RpcServer, alice: Session) -> Iterator[tuple[AgentJobStore, Outbox]]:
    state = AgentState(tmp_path)
    state.save_login(
        LoginState(
            server=f"http://{rpc.target}/",
            username="alice",
            device_id=alice.device_id,
            device_token=alice.metadata[0][1].removeprefix("Bearer "),
        )
    )
    store = AgentJobStore(tmp_path / "agent.db")
    yield store, Outbox(store, state, backoff=Backoff(first=0.05, cap=0.1))
    store.close()
    state.close()


def record(store: AgentJobStore, device_id: str, status: Status, *, job_id: str = "") -> str:
    job = JobRecord(
        job_id=job_id or str(uuid.uuid4()),
        classification=Classification.BACKUP,
        status=status,
        device_id=device_id,
        username="alice",
        started_ns=time.time_ns(),
        ended_ns=0 if status.running else time.time_ns(),
    )
    store.save(job)
    store.append_log(job.job_id, [LogEntry(1, time.time_ns(), Severity.INFO, "started")])
    time.sleep(0.002)  # distinct start times: the outbox sends oldest first
    return job.job_id


async def test_refused_failing_and_good_records_mixed(
    agent: tuple[AgentJobStore, Outbox],
    alice: Session,
    rpc: RpcServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, outbox = agent
    device = alice.device_id
    # Oldest first: a record the server refuses for good leads the queue.
    missed = record(store, device, Status.MISSED)  # a run missed while the agent was down
    too_long = record(store, device, Status.SUCCESS, job_id="x" * 80)  # not a valid id
    abandoned = record(store, device, Status.ABANDONED)  # cut off by an agent restart
    flaky = record(store, device, Status.SUCCESS)  # the server fails on it twice
    good = [record(store, device, s) for s in (Status.SUCCESS, Status.RUNNING, Status.ERROR)]

    real_report = ServerJobStore.report
    failures = {"away": 1, flaky: 2}

    async def faulty(self: ServerJobStore, **kw: object) -> int:
        job_id = kw["job"].job_id  # type: ignore[attr-defined]
        if failures["away"]:  # the first call of all: the database is away
            failures["away"] -= 1
            raise DatabaseUnavailableError("away")
        if failures.get(job_id):
            failures[job_id] -= 1
            raise RuntimeError("a bug that passes")
        return await real_report(self, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ServerJobStore, "report", faulty)

    assert await outbox.flush() is False  # the server is away: nothing lost, all pending
    assert outbox.counts() == (7, 0)
    assert outbox.last_error == "the server's database is unavailable; try again shortly"

    deadline = time.monotonic() + 10
    while not await outbox.flush():
        assert time.monotonic() < deadline, outbox.last_error
        await asyncio.sleep(0.05)

    assert outbox.counts() == (0, 1)
    assert "job id of at most 64 characters" in store_rejection(store, too_long)
    assert outbox.last_error.startswith("the server refused the record of job")

    page = await rpc.stores.jobs.find(JobQuery())
    on_server = sorted(j.job_id for j in page.jobs)
    assert on_server == sorted([missed, abandoned, flaky, *good])

    # Everything again (an agent that lost its acknowledgements): no duplicates.
    for job_id in [missed, abandoned, flaky, *good]:
        job = store.get(job_id)
        assert job is not None
        store.save(job)
    assert await outbox.flush() is True
    page = await rpc.stores.jobs.find(JobQuery())
    assert sorted(j.job_id for j in page.jobs) == on_server
    for job_id in on_server:
        _, lines = await rpc.stores.jobs.log(job_id)
        assert [line.message for line in lines] == ["started"]

    # A refused record that changes (new log lines) is offered again.
    store.append_log(missed, [LogEntry(2, time.time_ns(), Severity.INFO, "more")])
    assert outbox.counts() == (1, 1)


def store_rejection(store: AgentJobStore, job_id: str) -> str:
    row = store._db.execute("SELECT rejected FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return str(row[0])
