"""Job history: idempotent reports, ownership, queries, abandoned/revived jobs, log
pruning and missed scheduled runs, against a real PostgreSQL with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest

from comet.server.app import Stores
from comet.server.schedule_times import ScheduleTimes
from comet.server.store.accounts import Role
from comet.server.store.jobs import JobQuery, JobStatus
from comet.v1 import admin_pb2, common_pb2, control_pb2
from tests.server.conftest import FakeClock, RpcServer, Session, expect_error

BACKUP = common_pb2.JOB_CLASSIFICATION_BACKUP
RUNNING = common_pb2.JOB_STATUS_RUNNING


def report(
    job_id: str,
    *,
    status: int = RUNNING,
    seqs: tuple[int, ...] = (),
    progress: int = 0,
    started: datetime | None = None,
    item: str = "item-1",
    vault: str = "vault-1",
    files: int = 0,
) -> control_pb2.JobReport:
    job = common_pb2.Job(
        job_id=job_id,
        item_id=item,
        vault_id=vault,
        classification=BACKUP,
        status=status,  # type: ignore[arg-type]
        counters=common_pb2.JobCounters(files=files, bytes=files * 10),
        progress=common_pb2.JobProgress(counter=progress, bytes_done=progress * 100),
        device_id="forged-device-id",  # ignored: the credential says which device
    )
    if started is not None:
        job.started_at.FromDatetime(started)
    return control_pb2.JobReport(
        job=job,
        log=[
            common_pb2.LogEntry(seq=s, severity=common_pb2.SEVERITY_INFO, message=f"line {s}")
            for s in seqs
        ],
    )


@pytest.fixture
async def alice(rpc: RpcServer) -> Session:
    await rpc.add_user("alice")
    return await rpc.device("alice")


@pytest.fixture
async def root(rpc: RpcServer) -> Session:
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    return await rpc.session("root")


async def job_log(rpc: RpcServer, root: Session, job_id: str) -> admin_pb2.GetJobLogReply:
    return await rpc.admin.GetJobLog(
        admin_pb2.GetJobLogRequest(job_id=job_id), metadata=root.metadata
    )


async def test_reports_are_idempotent_and_stale_progress_is_ignored(
    rpc: RpcServer, alice: Session, root: Session
) -> None:
    ack = await rpc.agent.ReportJob(report("j1", seqs=(1, 2), progress=5), metadata=alice.metadata)
    assert ack.last_log_seq == 2
    # The outbox re-sends the same report, then an older progress report arrives late.
    await rpc.agent.ReportJob(report("j1", seqs=(1, 2), progress=5), metadata=alice.metadata)
    ack = await rpc.agent.ReportJob(report("j1", seqs=(2, 3), progress=3), metadata=alice.metadata)
    assert ack.last_log_seq == 3
    log = await job_log(rpc, root, "j1")
    assert [e.message for e in log.entries] == ["line 1", "line 2", "line 3"]
    assert log.job.progress.counter == 5 and log.job.progress.bytes_done == 500
    assert log.job.device_id == alice.device_id and log.job.username == "alice"

    final = report("j1", status=common_pb2.JOB_STATUS_SUCCESS, files=7, progress=9)
    final.final = True
    await rpc.agent.ReportJob(final, metadata=alice.metadata)
    await rpc.agent.ReportJob(final, metadata=alice.metadata)
    # A stale "running" report cannot reopen an ended job.
    await rpc.agent.ReportJob(report("j1", progress=4), metadata=alice.metadata)
    jobs = await rpc.agent.ListJobs(control_pb2.ListAccountJobsRequest(), metadata=alice.metadata)
    [job] = jobs.jobs
    assert job.status == common_pb2.JOB_STATUS_SUCCESS and job.counters.files == 7
    assert job.ended_at.seconds > 0


async def test_a_device_reports_only_its_own_jobs(rpc: RpcServer, alice: Session) -> None:
    await rpc.agent.ReportJob(report("j1"), metadata=alice.metadata)
    other = await rpc.device("alice", device_name="desktop")
    await expect_error(
        rpc.agent.ReportJob(
            report("j1", status=common_pb2.JOB_STATUS_ERROR), metadata=other.metadata
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "belongs to another device",
    )
    await rpc.add_user("mallory")
    mallory = await rpc.device("mallory")
    await expect_error(
        rpc.agent.ReportJob(report("j1"), metadata=mallory.metadata),
        grpc.StatusCode.PERMISSION_DENIED,
        "belongs to another device",
    )
    await expect_error(
        rpc.agent.ReportJob(
            report("j2", status=common_pb2.JOB_STATUS_MISSED), metadata=alice.metadata
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "set by the server only",
    )


async def test_a_device_reports_the_jobs_its_restart_abandoned(
    rpc: RpcServer, alice: Session, root: Session, stores: Stores, clock: FakeClock
) -> None:
    """The agent marks a job cut off by its own stop ABANDONED and reports it: the
    server keeps that apart from its own timeout, and a repeat changes nothing."""
    await rpc.agent.ReportJob(report("cut", seqs=(1,)), metadata=alice.metadata)
    abandoned = report("cut", status=common_pb2.JOB_STATUS_ABANDONED, seqs=(1, 2))
    abandoned.final = True
    for _ in range(2):
        ack = await rpc.agent.ReportJob(abandoned, metadata=alice.metadata)
        assert ack.last_log_seq == 2
    # Reported ABANDONED straight away (the server never saw it running).
    await rpc.agent.ReportJob(
        report("never-seen", status=common_pb2.JOB_STATUS_ABANDONED), metadata=alice.metadata
    )
    await rpc.agent.ReportJob(report("silent"), metadata=alice.metadata)
    clock.advance(minutes=11)
    assert (await stores.maintenance.run_once()).abandoned == ["silent"]
    jobs = {
        j.job_id: j
        for j in (
            await rpc.agent.ListJobs(control_pb2.ListAccountJobsRequest(), metadata=alice.metadata)
        ).jobs
    }
    assert len(jobs) == 3
    assert all(j.status == common_pb2.JOB_STATUS_ABANDONED for j in jobs.values())
    assert jobs["cut"].abandoned_by == common_pb2.ABANDONED_BY_AGENT_RESTART
    assert jobs["never-seen"].abandoned_by == common_pb2.ABANDONED_BY_AGENT_RESTART
    assert jobs["silent"].abandoned_by == common_pb2.ABANDONED_BY_SERVER_TIMEOUT
    assert jobs["cut"].ended_at.seconds > 0
    log = await job_log(rpc, root, "cut")
    assert [e.message for e in log.entries] == ["line 1", "line 2"]
    # The agent also learns later that the server had timed it out: its own account
    # of what happened wins, and a late ABANDONED never rewrites a finished job.
    await rpc.agent.ReportJob(
        report("silent", status=common_pb2.JOB_STATUS_ABANDONED), metadata=alice.metadata
    )
    done = report("done", status=common_pb2.JOB_STATUS_SUCCESS)
    await rpc.agent.ReportJob(done, metadata=alice.metadata)
    await rpc.agent.ReportJob(
        report("done", status=common_pb2.JOB_STATUS_ABANDONED), metadata=alice.metadata
    )
    jobs = {
        j.job_id: j
        for j in (
            await rpc.agent.ListJobs(control_pb2.ListAccountJobsRequest(), metadata=alice.metadata)
        ).jobs
    }
    assert jobs["silent"].abandoned_by == common_pb2.ABANDONED_BY_AGENT_RESTART
    assert jobs["done"].status == common_pb2.JOB_STATUS_SUCCESS
    assert jobs["done"].abandoned_by == common_pb2.ABANDONED_BY_UNSPECIFIED


async def test_silent_jobs_are_abandoned_then_revived_by_a_later_report(
    rpc: RpcServer, alice: Session, root: Session, stores: Stores, clock: FakeClock
) -> None:
    await rpc.agent.ReportJob(report("j1", seqs=(1,)), metadata=alice.metadata)
    await rpc.agent.ReportJob(report("j2"), metadata=alice.metadata)
    clock.advance(minutes=9)
    await rpc.agent.ReportJob(report("j2", progress=1), metadata=alice.metadata)
    clock.advance(minutes=2)
    result = await stores.maintenance.run_once()
    assert result.abandoned == ["j1"]  # j2 reported 2 minutes ago
    assert (await stores.maintenance.run_once()).abandoned == []

    log = await job_log(rpc, root, "j1")
    assert log.job.status == common_pb2.JOB_STATUS_ABANDONED
    assert "stopped reporting" in log.entries[-1].message
    assert log.entries[-1].severity == common_pb2.SEVERITY_ERROR

    ack = await rpc.agent.ReportJob(report("j1", seqs=(2,)), metadata=alice.metadata)
    assert ack.last_log_seq == 2  # the server's own lines do not count
    log = await job_log(rpc, root, "j1")
    assert log.job.status == common_pb2.JOB_STATUS_RUNNING_REVIVED
    assert "revived" in log.entries[-2].message and log.entries[-1].message == "line 2"
    assert log.job.ended_at.seconds == 0
    await rpc.agent.ReportJob(report("j1", progress=2), metadata=alice.metadata)
    assert (await job_log(rpc, root, "j1")).job.status == common_pb2.JOB_STATUS_RUNNING_REVIVED
    await rpc.agent.ReportJob(
        report("j1", status=common_pb2.JOB_STATUS_WARNING), metadata=alice.metadata
    )
    assert (await job_log(rpc, root, "j1")).job.status == common_pb2.JOB_STATUS_WARNING


async def test_old_log_lines_are_pruned(
    rpc: RpcServer, alice: Session, stores: Stores, clock: FakeClock
) -> None:
    await rpc.agent.ReportJob(
        report("old", status=common_pb2.JOB_STATUS_SUCCESS, seqs=(1, 2)), metadata=alice.metadata
    )
    clock.advance(days=89)
    await rpc.agent.ReportJob(
        report("new", status=common_pb2.JOB_STATUS_SUCCESS, seqs=(1,)), metadata=alice.metadata
    )
    clock.advance(days=2)
    assert (await stores.maintenance.run_once()).pruned_log_lines == 2
    old, old_lines = await stores.jobs.log("old")
    assert old_lines == [] and len((await stores.jobs.log("new"))[1]) == 1
    # The job record itself stays in the history.
    assert old.status is JobStatus.SUCCESS


async def test_admin_job_filters_and_paging(
    rpc: RpcServer, alice: Session, root: Session, clock: FakeClock
) -> None:
    await rpc.add_user("bob")
    bob = await rpc.device("bob")
    start = clock.now()
    for i in range(5):
        await rpc.agent.ReportJob(
            report(
                f"a{i}",
                status=common_pb2.JOB_STATUS_SUCCESS if i % 2 else RUNNING,
                started=start + timedelta(minutes=i),
                vault="v1" if i < 3 else "v2",
            ),
            metadata=alice.metadata,
        )
    await rpc.agent.ReportJob(
        report("b0", started=start - timedelta(minutes=1)), metadata=bob.metadata
    )

    async def ids(**fields: object) -> list[str]:
        reply = await rpc.admin.ListJobs(control_pb2.JobFilter(**fields), metadata=root.metadata)  # type: ignore[arg-type]
        return [j.job_id for j in reply.jobs]

    assert await ids() == ["a4", "a3", "a2", "a1", "a0", "b0"]
    assert await ids(username="bob") == ["b0"]
    assert await ids(device_id=alice.device_id, vault_id="v2") == ["a4", "a3"]
    assert await ids(statuses=[common_pb2.JOB_STATUS_SUCCESS]) == ["a3", "a1"]
    assert await ids(classifications=[common_pb2.JOB_CLASSIFICATION_RESTORE]) == []
    since = common_pb2.Job().started_at
    since.FromDatetime(start + timedelta(minutes=2))
    assert await ids(since=since) == ["a4", "a3", "a2"]
    assert await ids(until=since) == ["a1", "a0", "b0"]

    seen: list[str] = []
    token = ""
    while True:
        reply = await rpc.admin.ListJobs(
            control_pb2.JobFilter(page_size=2, page_token=token), metadata=root.metadata
        )
        seen += [j.job_id for j in reply.jobs]
        token = reply.next_page_token
        if not token:
            break
    assert seen == ["a4", "a3", "a2", "a1", "a0", "b0"]
    await expect_error(
        rpc.admin.ListJobs(control_pb2.JobFilter(page_token="garbage"), metadata=root.metadata),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page token",
    )
    await expect_error(
        rpc.admin.ListJobs(control_pb2.JobFilter(username="nobody"), metadata=root.metadata),
        grpc.StatusCode.NOT_FOUND,
        "nobody",
    )
    # A device's own listing is limited to its account, whatever the filter asks.
    mine = await rpc.agent.ListJobs(
        control_pb2.ListAccountJobsRequest(filter=control_pb2.JobFilter(username="alice")),
        metadata=bob.metadata,
    )
    assert [j.job_id for j in mine.jobs] == ["b0"]


# ---------------------------------------------------------------- missed scheduled runs


async def scheduled_profile(
    rpc: RpcServer, who: Session, schedule: common_pb2.Schedule
) -> tuple[str, str]:
    profile = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=who.metadata)
    profile.items.append(
        common_pb2.ProtectedItem(name="home", type=common_pb2.ITEM_TYPE_FILES, includes=["/h"])
    )
    profile.vaults.append(common_pb2.StorageVault(name="v", type=common_pb2.VAULT_TYPE_LOCAL))
    profile = await rpc.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=profile), metadata=who.metadata
    )
    item_id, vault_id = profile.items[0].item_id, profile.vaults[0].vault_id
    schedule.item_id, schedule.vault_id, schedule.enabled = item_id, vault_id, True
    profile.schedules.append(schedule)
    await rpc.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=profile), metadata=who.metadata
    )
    return item_id, vault_id


async def test_a_daily_run_that_did_not_happen_is_recorded_as_missed(
    rpc: RpcServer, alice: Session, stores: Stores, clock: FakeClock
) -> None:
    # Now: Monday 2026-01-05 09:00 UTC. Daily at 10:00 UTC.
    item_id, vault_id = await scheduled_profile(
        rpc, alice, common_pb2.Schedule(frequency=common_pb2.SCHEDULE_FREQUENCY_DAILY, hour=10)
    )
    clock.advance(hours=1, minutes=29)  # 10:29: still within the 30 min grace
    assert (await stores.maintenance.run_once()).missed == []
    clock.advance(minutes=2)
    [missed] = (await stores.maintenance.run_once()).missed
    assert (await stores.maintenance.run_once()).missed == []  # recorded once
    page = await stores.jobs.find(JobQuery(statuses=(JobStatus.MISSED,)))
    [job] = page.jobs
    assert job.job_id == missed and job.device_id == alice.device_id
    assert (job.item_id, job.vault_id) == (item_id, vault_id)
    assert job.started_at == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

    # The next day the device runs the backup at 10:02: nothing is missed.
    clock.current = datetime(2026, 1, 6, 10, 2, tzinfo=UTC)
    await rpc.agent.ReportJob(
        report("real", item=item_id, vault=vault_id, started=clock.now()), metadata=alice.metadata
    )
    clock.advance(hours=2)
    assert (await stores.maintenance.run_once()).missed == []


async def test_missed_periodic_runs_are_recorded_once_each(
    rpc: RpcServer, alice: Session, stores: Stores, clock: FakeClock
) -> None:
    await scheduled_profile(
        rpc,
        alice,
        common_pb2.Schedule(
            frequency=common_pb2.SCHEDULE_FREQUENCY_PERIODIC, every_seconds=3600, offset_seconds=900
        ),
    )
    clock.advance(hours=3, minutes=40)  # 12:40: due 09:15 .. 12:15, past the grace up to 12:10
    missed = (await stores.maintenance.run_once()).missed
    assert len(missed) == 3
    page = await stores.jobs.find(JobQuery(statuses=(JobStatus.MISSED,)))
    assert [j.started_at.strftime("%H:%M") for j in page.jobs if j.started_at] == [
        "11:15",
        "10:15",
        "09:15",
    ]


def test_schedule_due_times() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)
    end = datetime(2026, 3, 31, 0, 0, tzinfo=UTC)
    daily = ScheduleTimes(frequency=8011, hour=2, minute=30)
    # 02:30 local: CET (UTC+1) before the DST change on 29 March, CEST (UTC+2) after.
    assert [t.strftime("%d %H:%M") for t in daily.runs_between(berlin, start, end)] == [
        "27 01:30",
        "28 01:30",
        "29 01:30",
        "30 00:30",
    ]
    weekdays = ScheduleTimes(frequency=8011, hour=12, weekdays=(0,))  # Mondays only
    assert [t.day for t in weekdays.runs_between(ZoneInfo("UTC"), start, end)] == [30]
    hourly = ScheduleTimes(frequency=8012, minute=5, window=(9 * 60, 11 * 60))
    day = datetime(2026, 1, 5, tzinfo=UTC)
    assert [t.hour for t in hourly.runs_between(ZoneInfo("UTC"), day, day + timedelta(days=1))] == [
        9,
        10,
    ]
    periodic = ScheduleTimes(frequency=8015, every_seconds=600, offset_seconds=60)
    runs = periodic.runs_between(ZoneInfo("UTC"), day, day + timedelta(minutes=30))
    assert [t.strftime("%H:%M") for t in runs] == ["00:01", "00:11", "00:21"]
    assert ScheduleTimes(frequency=8013).runs_between(ZoneInfo("UTC"), start, end) == []
