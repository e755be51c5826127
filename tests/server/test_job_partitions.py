"""The jobs table partitioned by month on ``started_at`` (migration 0016): an existing
database is converted in place (jobs and logs stay readable, history queries return
the same rows), reports are still deduplicated by job id, and the maintenance task
creates months ahead."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from comet.server.store.database import alembic_config, create_engine, migrate
from comet.server.store.jobs import (
    JobClassification,
    JobQuery,
    JobRecord,
    JobStatus,
    JobStore,
    LogLine,
    Severity,
    _by_id,
)
from comet.server.store.models import Job
from comet.server.store.partitions import month_start, partitions
from tests.fixtures.postgres import PostgresCluster
from tests.server.conftest import FakeClock

pytestmark = pytest.mark.timeout(60)


QUERIES = (
    JobQuery(page_size=1000),
    JobQuery(device_id="d1", page_size=7),
    JobQuery(username="alice", statuses=(JobStatus.ERROR,)),
    JobQuery(item_id="i2", since=datetime(2025, 6, 1, tzinfo=UTC)),
    JobQuery(vault_id="v1", until=datetime(2025, 9, 1, tzinfo=UTC)),
)


LOGGED = ("j0", "j17", "j59")


async def history(store: JobStore, *, logs: bool = True) -> list[list[tuple[object, ...]]]:
    """Every page of every query, and (unless not ``logs``) each job's log."""
    results = []
    for query in QUERIES:
        rows: list[tuple[object, ...]] = []
        token = ""
        while True:
            page = await store.find(replace(query, page_token=token))
            rows += [(j.job_id, j.status, j.started_at, j.username) for j in page.jobs]
            token = page.next_page_token
            if not token:
                break
        results.append(rows)
    for job_id in LOGGED if logs else ():
        job, log = await store.log(job_id)
        results.append([(job.job_id, job.started_at)] + [(x.seq, x.message) for x in log])
    return results


async def test_existing_jobs_are_partitioned_in_place(postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.empty_database()
    migrate(url, "0015")
    now = datetime.now(UTC)
    first = datetime(2025, 1, 3, 12, tzinfo=UTC)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, created_at,"
            " profile, profile_version) VALUES ('u1', 'alice', 1, '{}', 'h', 's', now(), '{}', 1)"
        )
        for n in range(60):  # one job every 8 days: about 16 months, the last one recent
            started = first + timedelta(days=8 * n) if n < 59 else now - timedelta(hours=1)
            conn.execute(
                "INSERT INTO jobs (job_id, user_id, device_id, item_id, vault_id,"
                " classification, status, started_at, ended_at, last_report_at)"
                " VALUES (%s, 'u1', %s, %s, %s, 4001, %s, %s, %s, %s)",
                (
                    f"j{n}",
                    f"d{n % 3}",
                    f"i{n % 4}",
                    f"v{n % 2}",
                    7002 if n % 5 == 0 else 5000,
                    started,
                    started + timedelta(minutes=5),
                    started + timedelta(minutes=5),
                ),
            )
            for seq in (2, 1, -1):
                conn.execute(
                    "INSERT INTO job_log VALUES (%s, %s, %s, 2, %s)",
                    (f"j{n}", seq, started + timedelta(seconds=seq + 1), f"line {seq}"),
                )
    engine = create_engine(url, pool_size=2)
    try:
        # Lookups by id need 0018's job_ids; the logs as the store orders them.
        before = await history(JobStore(engine, FakeClock(now)), logs=False)
        assert all(before)
    finally:
        await engine.dispose()
    with psycopg.connect(url) as conn:
        for job_id in LOGGED:
            [started] = conn.execute("SELECT started_at FROM jobs WHERE job_id = %s", (job_id,))
            lines = conn.execute(
                "SELECT seq, message FROM job_log WHERE job_id = %s"
                " ORDER BY time, seq >= 0, abs(seq)",
                (job_id,),
            ).fetchall()
            before.append([(job_id, started[0]), *lines])

    migrate(url)
    with psycopg.connect(url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'jobs'")
        assert kind.fetchone() == ("p",)
        assert conn.execute("SELECT count(*) FROM jobs_legacy").fetchone() == (60,)
        assert conn.execute("SELECT count(*) FROM job_ids").fetchone() == (60,)
        # The old key on users became the parent's (not a second one checked again).
        keys = conn.execute(
            "SELECT confrelid::regclass::text FROM pg_constraint"
            " WHERE conrelid = 'jobs_legacy'::regclass AND contype = 'f' ORDER BY 1"
        ).fetchall()
        assert keys == [("job_ids",), ("users",)]
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT * FROM jobs WHERE started_at >= now() + interval '40 days'"
            ).fetchall()
        )
        assert "jobs_legacy" not in plan and "jobs_p" in plan, plan  # old months skipped

    engine = create_engine(url, pool_size=2)
    try:
        store = JobStore(engine, FakeClock(now))
        assert await history(store) == before

        # A record reported twice is stored once, old or new; a later report that
        # brings the device's start time moves the row to its month.
        done = JobRecord("j3", JobClassification.BACKUP, JobStatus.SUCCESS)
        await store.report(user_id="u1", device_id="d0", job=done, log=[], final=True)
        ahead = month_start(now, 2) + timedelta(days=1)
        fresh = JobRecord("new", JobClassification.BACKUP, JobStatus.RUNNING)
        line = LogLine(1, ahead, Severity.INFO, "started")
        for _ in range(2):
            assert await store.report(user_id="u1", device_id="d0", job=fresh, log=[line]) == 1
        fresh = JobRecord("new", JobClassification.BACKUP, JobStatus.SUCCESS, started_at=ahead)
        for _ in range(2):
            await store.report(user_id="u1", device_id="d0", job=fresh, log=[line], final=True)
        expected = datetime(2025, 2, 1, tzinfo=UTC)
        for _ in range(2):
            await store.record_missed(
                user_id="u1",
                device_id="d0",
                item_id="i0",
                vault_id="v0",
                schedule_id="s1",
                expected=expected,
            )
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (62,)
            assert conn.execute("SELECT count(*) FROM job_ids").fetchone() == (62,)
            where = conn.execute(
                "SELECT tableoid::regclass::text, status FROM jobs WHERE job_id = 'new'"
            ).fetchall()
            assert where == [(f"jobs_p{ahead:%Y%m}", int(JobStatus.SUCCESS))]
            status = conn.execute("SELECT status FROM jobs WHERE job_id = 'j3'").fetchone()
            assert status == (int(JobStatus.SUCCESS),)
        job, log = await store.log("new")
        assert job.started_at == ahead and [x.message for x in log] == ["started"]
        with psycopg.connect(url) as conn:
            # job_ids follows each job's month (0018), so a lookup by id reads one.
            drift = conn.execute(
                "SELECT count(*) FROM job_ids i JOIN jobs j USING (job_id)"
                " WHERE i.started_at <> j.started_at"
            )
            assert drift.fetchone() == (0,)
            query = (
                select(Job)
                .where(_by_id("new"))
                .compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            )
            plan = [r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {query}")]
            scans = [line for line in plan if " on jobs_" in line]
            executed = [line for line in scans if "never executed" not in line]
            assert len(scans) > 3 and len(executed) == 1, plan
            assert f"jobs_p{ahead:%Y%m}" in executed[0], plan

        # Months ahead: the migration made three; the maintenance task makes the rest.
        async with engine.connect() as conn:
            names = [p.name for p in await partitions(conn, "jobs")]
        assert f"jobs_p{month_start(now, 3):%Y%m}" in names
        assert f"jobs_p{month_start(now, 4):%Y%m}" not in names
        assert await store.ensure_partitions() == 0  # this month: the legacy partition's
        later = JobStore(engine, FakeClock(month_start(now, 6)))
        assert await later.ensure_partitions() == 4
        async with engine.connect() as conn:
            names = [p.name for p in await partitions(conn, "jobs")]
        assert f"jobs_p{month_start(now, 9):%Y%m}" in names and "jobs_default" in names
    finally:
        await engine.dispose()

    command.downgrade(alembic_config(url), "0015")
    with psycopg.connect(url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'jobs'")
        assert kind.fetchone() == ("r",)
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (62,)
        assert conn.execute("SELECT count(*) FROM job_log").fetchone() == (182,)
    migrate(url)
    with psycopg.connect(url) as conn:
        # Deleting the user still takes its jobs and their logs along.
        conn.execute("DELETE FROM users")
        for table in ("jobs", "job_ids", "job_log"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
