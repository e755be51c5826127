"""Each device's backup summary (migration 0017), which the dashboard and the overdue
notifications read instead of every profile and the whole job history, always says
what the history says: checked against the old definition, computed from the raw
tables, after each kind of job write (reports, missed runs, abandoned jobs, late
corrections) and profile write, and after upgrading a database at 0016 with rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.app import Stores, open_stores
from comet.server.notify.events import ERROR_STATUSES, GOOD_STATUSES, overdue_devices
from comet.server.secret_box import SecretBox
from comet.server.store import profile_document
from comet.server.store.database import alembic_config, create_engine, migrate
from comet.server.store.jobs import JobClassification, JobRecord, JobStatus
from comet.server.store.models import Device, Job, User
from tests.fixtures.postgres import PostgresCluster
from tests.server.conftest import KDF, TEST_CONFIG, FakeClock, auth_key

pytestmark = pytest.mark.timeout(60)

OVERDUE_AFTER = timedelta(hours=26)  # the stores' default (EventPolicy.overdue_after)
BACKUP = JobClassification.BACKUP


def _old_scheduled(profile: dict[str, Any] | None, device_id: str) -> bool:
    """The rule ``overdue_devices`` applied to each profile before 0017."""
    doc = profile_document.normalised(profile)
    owned = {i.get("item_id") for i in doc["items"] if i.get("owner_device_id") == device_id}
    return any(sc.get("enabled") and sc.get("item_id") in owned for sc in doc["schedules"])


async def old_definition(engine: AsyncEngine, now: datetime) -> dict[str, tuple[str, Any]]:
    """Devices needing attention as the dashboard found them before 0017: the latest
    backup (by start) ended badly, else overdue; from profiles and every job row."""
    async with async_sessionmaker(engine)() as s:
        devices = (
            await s.execute(
                select(Device, User.profile)
                .join(User, User.id == Device.user_id)
                .where(Device.revoked_at.is_(None))
            )
        ).all()
        jobs = list(await s.scalars(select(Job).where(Job.classification == int(BACKUP))))
    out: dict[str, tuple[str, Any]] = {}
    for device, profile in devices:
        mine = sorted(
            (j for j in jobs if j.device_id == device.id),
            key=lambda j: (j.started_at, j.job_id),
        )
        good = [j.ended_at for j in mine if j.status in GOOD_STATUSES and j.ended_at]
        last_good = max(good, default=None)
        if mine and JobStatus(mine[-1].status) in ERROR_STATUSES:
            out[device.id] = (f"failed: {JobStatus(mine[-1].status).name}", mine[-1].ended_at)
        elif (
            _old_scheduled(profile, device.id)
            and (last_good or device.registered_at) < now - OVERDUE_AFTER
        ):
            out[device.id] = ("overdue", last_good)
    return out


async def check(stores: Stores, engine: AsyncEngine, clock: FakeClock) -> dict[str, str]:
    """The summary's answers equal the old definition's; returns device -> reason."""
    expected = await old_definition(engine, clock.now())
    attention = await stores.overview.needing_attention(limit=1000)
    assert attention.total == len(attention.devices) == len(expected)
    assert {a.device_id: (a.reason, a.since) for a in attention.devices} == expected
    failed_first = [not a.reason.startswith("failed") for a in attention.devices]
    assert failed_first == sorted(failed_first)
    async with AsyncSession(engine) as s:
        overdue = await overdue_devices(s, clock.now() - OVERDUE_AFTER)
    reference = await old_overdue(engine, clock.now())
    assert {(d["device_id"], d["last_good_backup"]) for d in overdue} == reference
    return {d: reason for d, (reason, _) in expected.items()}


async def old_overdue(engine: AsyncEngine, now: datetime) -> set[tuple[str, str]]:
    """``overdue_devices`` before 0017 (failed devices included): id, last good."""
    async with async_sessionmaker(engine)() as s:
        rows = (
            await s.execute(
                select(Device, User.profile)
                .join(User, User.id == Device.user_id)
                .where(Device.revoked_at.is_(None))
            )
        ).all()
        good = dict(
            (
                await s.execute(
                    text(
                        "SELECT device_id, max(ended_at) FROM jobs WHERE classification = 4001"
                        " AND status IN (5000, 7001) GROUP BY device_id"
                    )
                )
            ).all()
        )
    out = set()
    for device, profile in rows:
        last = good.get(device.id)
        if _old_scheduled(profile, device.id) and (last or device.registered_at) < now - (
            OVERDUE_AFTER
        ):
            out.add((device.id, last.strftime("%Y-%m-%dT%H:%M:%SZ") if last else ""))
    return out


async def add_device(engine: AsyncEngine, user_id: str, name: str, registered: datetime) -> str:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,"
                " registered_at, token_hash) VALUES (:id, :u, :name, 'linux', 'x86_64', 'UTC',"
                " '1', :at, :token)"
            ),
            {"id": f"dev-{name}", "u": user_id, "name": name, "at": registered, "token": name},
        )
    return f"dev-{name}"


def item(device: str) -> dict[str, Any]:
    return {"item_id": f"item-{device}", "name": device, "type": 1, "includes": ["/home"]}


def schedule(device: str, *, enabled: bool) -> dict[str, Any]:
    return {
        "schedule_id": f"sch-{device}", "item_id": f"item-{device}", "vault_id": "v1",
        "frequency": 2, "hour": 22, "enabled": enabled,
    }  # fmt: skip


async def test_the_summary_follows_every_job_and_profile_write(
    stores: Stores, engine: AsyncEngine, clock: FakeClock
) -> None:
    alice = (await stores.accounts.create_user("alice", KDF, auth_key())).user_id
    start = clock.now()
    d1, d2, d3, d4 = [
        await add_device(engine, alice, n, start - timedelta(days=3)) for n in ("a", "b", "c", "d")
    ]
    fresh = await add_device(engine, alice, "e", start)  # registered now: not overdue yet

    async def put(device: str, items: list[Any], schedules: list[Any]) -> None:
        view = await stores.profiles.get(alice, reveal_secrets=True)
        vault = {"vault_id": "v1", "name": "local", "type": 1002, "local": {"path": "/srv"}}
        doc = view.document | {"items": items, "schedules": schedules, "vaults": [vault]}
        await stores.profiles.put(alice, device_id=device, version=view.version, document=doc)

    async def report(device: str, job_id: str, status: JobStatus, **fields: Any) -> None:
        job = JobRecord(job_id, fields.pop("classification", BACKUP), status, **fields)
        await stores.jobs.report(user_id=alice, device_id=device, job=job, log=[], final=True)

    at = start - timedelta(hours=2)
    assert await check(stores, engine, clock) == {}  # nothing scheduled yet
    await put(d1, [item(d1)], [schedule(d1, enabled=True)])
    await put(d2, [item(d1), item(d2)], [schedule(d1, enabled=True), schedule(d2, enabled=True)])
    await put(
        fresh,
        [item(d1), item(d2), item(fresh)],
        [schedule(d1, enabled=True), schedule(d2, enabled=True), schedule(fresh, enabled=True)],
    )
    assert await check(stores, engine, clock) == {d1: "overdue", d2: "overdue"}

    await report(d1, "j1", JobStatus.RUNNING, started_at=at)
    await report(d1, "j1", JobStatus.SUCCESS, started_at=at, ended_at=at + timedelta(minutes=5))
    await report(d2, "j2", JobStatus.ERROR, started_at=at, ended_at=at + timedelta(minutes=1))
    await report(d3, "j3", JobStatus.RUNNING, started_at=at)  # unscheduled, running
    await report(d4, "r1", JobStatus.ERROR, classification=JobClassification.RESTORE, started_at=at)
    assert await check(stores, engine, clock) == {d2: "failed: ERROR"}

    # A newer backup of d1 fails; d2's next one succeeds; d3's goes silent.
    later = at + timedelta(hours=1)
    await report(d1, "j4", JobStatus.RUNNING, started_at=later)
    assert await check(stores, engine, clock) == {d2: "failed: ERROR"}  # running: not failed
    await report(d1, "j4", JobStatus.ERROR, started_at=later, ended_at=later)
    await report(d2, "j5", JobStatus.WARNING, started_at=later, ended_at=later)
    clock.advance(hours=1)
    assert await stores.jobs.abandon_silent(timedelta(minutes=30)) == ["j3"]
    assert await check(stores, engine, clock) == {d1: "failed: ERROR", d3: "failed: ABANDONED"}

    # The missed-run sweep records a run d2 missed after its good backup.
    missed = await stores.jobs.record_missed(
        user_id=alice, device_id=d2, item_id=f"item-{d2}", vault_id="v1",
        schedule_id=f"sch-{d2}", expected=later + timedelta(minutes=30),
    )  # fmt: skip
    assert missed is not None
    assert (await check(stores, engine, clock))[d2] == "failed: MISSED"

    # Late corrections: d1's failed job started before its good one after all (the
    # device's own start time arrives), and d2's good backup was in fact an error.
    await report(d1, "j4", JobStatus.ERROR, started_at=at - timedelta(hours=1), ended_at=later)
    await report(d2, "j5", JobStatus.ERROR, started_at=later, ended_at=later)
    # A job first reported as a backup turns out to be a restore.
    await report(d4, "j6", JobStatus.ERROR, started_at=later)
    await report(
        d4, "j6", JobStatus.ERROR, started_at=later, classification=JobClassification.RESTORE
    )
    assert await check(stores, engine, clock) == {d2: "failed: MISSED", d3: "failed: ABANDONED"}

    # A day later d1 is overdue (its good backup is old), then its schedule is off.
    clock.advance(hours=26)
    assert await check(stores, engine, clock) == {
        d1: "overdue", d2: "failed: MISSED", d3: "failed: ABANDONED", fresh: "overdue"
    }  # fmt: skip
    await put(
        fresh,
        [item(d1), item(d2), item(fresh)],
        [schedule(d1, enabled=False), schedule(d2, enabled=True), schedule(fresh, enabled=True)],
    )
    assert d1 not in await check(stores, engine, clock)
    # The dashboard's short list says how many there are in all.
    first = await stores.overview.needing_attention(limit=1)
    assert len(first.devices) == 1 and first.total == 3
    assert first.devices[0].reason.startswith("failed")


async def test_upgrading_a_database_at_0016_fills_the_summary_and_indexes_every_month(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.empty_database()
    migrate(url, "0016")
    now = datetime.now(UTC)
    profile = {
        "items": [{"item_id": f"i{n}", "owner_device_id": f"d{n}", "type": 1} for n in range(4)],
        "schedules": [{"item_id": f"i{n}", "enabled": n != 3} for n in range(4)],
    }
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, created_at,"
            " profile, profile_version) VALUES ('u1', 'alice', 1, '{}', 'h', 's', now(), %s, 1)",
            (psycopg.types.json.Json(profile),),
        )
        for n in range(5):
            conn.execute(
                "INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,"
                " registered_at, token_hash) VALUES (%s, 'u1', %s, '', '', '', '', %s, %s)",
                (f"d{n}", f"laptop{n}", now - timedelta(days=400), f"t{n}"),
            )
        # Jobs over 14 months, in the legacy partition and in months ahead of it.
        for n in range(70):
            started = now - timedelta(days=6 * n) + timedelta(days=60 if n % 9 == 0 else 0)
            status = (5000, 7002, 7001, 7004, 6001)[n % 5]
            conn.execute("INSERT INTO job_ids VALUES (%s, 'u1')", (f"j{n}",))
            conn.execute(
                "INSERT INTO jobs (job_id, user_id, device_id, classification, status,"
                " started_at, ended_at, last_report_at) VALUES (%s, 'u1', %s, %s, %s, %s, %s,"
                " now())",
                (
                    f"j{n}",
                    f"d{n % 4}",
                    4003 if n % 7 == 0 else 4001,
                    status,
                    started,
                    None if status == 6001 else started + timedelta(minutes=3),
                ),
            )
    migrate(url)
    engine = create_engine(url, pool_size=2)
    try:
        clock = FakeClock(now)
        stores = open_stores(engine, clock, TEST_CONFIG, SecretBox(b"k" * 32))
        reasons = await check(stores, engine, clock)
        assert reasons and set(reasons) <= {"d0", "d1", "d2", "d3"}
        async with engine.connect() as conn:
            scheduled = set(
                await conn.scalars(text("SELECT id FROM devices WHERE backup_scheduled"))
            )
            missing = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'jobs'::regclass AND NOT EXISTS (SELECT 1 FROM"
                    " pg_indexes x WHERE x.tablename = c.relname AND x.indexdef LIKE"
                    " '%(started_at, job_id)%')"
                )
            )
        assert scheduled == {"d0", "d1", "d2"}
        assert missing == 0  # every partition has the keyset index
    finally:
        await engine.dispose()
    # And back down, and up again.
    command.downgrade(alembic_config(url), "0016")
    migrate(url)


async def test_deleted_jobs_leave_the_summary(
    stores: Stores, engine: AsyncEngine, clock: FakeClock
) -> None:
    """A deleted job (by hand, or with its user) is no device's latest or latest good
    backup any more: the device is counted again from the jobs that remain."""
    alice = (await stores.accounts.create_user("alice", KDF, auth_key())).user_id
    device = await add_device(engine, alice, "a", clock.now() - timedelta(days=3))
    view = await stores.profiles.get(alice, reveal_secrets=True)
    vault = {"vault_id": "v1", "name": "local", "type": 1002, "local": {"path": "/srv"}}
    doc = view.document | {
        "items": [item(device)], "schedules": [schedule(device, enabled=True)], "vaults": [vault]
    }  # fmt: skip
    await stores.profiles.put(alice, device_id=device, version=view.version, document=doc)
    at = clock.now() - timedelta(hours=3)
    for n, status in enumerate((JobStatus.SUCCESS, JobStatus.WARNING, JobStatus.ERROR)):
        when = at + timedelta(hours=n)
        job = JobRecord(f"k{n}", BACKUP, status, started_at=when, ended_at=when)
        await stores.jobs.report(user_id=alice, device_id=device, job=job, log=[], final=True)
    await stores.jobs.report(
        user_id=alice, device_id=device, final=True, log=[],
        job=JobRecord("r1", JobClassification.RESTORE, JobStatus.SUCCESS, started_at=clock.now()),
    )  # fmt: skip
    assert await check(stores, engine, clock) == {device: "failed: ERROR"}

    async def summary() -> tuple[Any, ...]:
        async with engine.connect() as conn:
            row = await conn.execute(
                text(
                    "SELECT last_backup_job_id, last_backup_status, last_good_backup_at"
                    " FROM devices WHERE id = :d"
                ),
                {"d": device},
            )
            return tuple(row.one())

    async def delete(where: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f"DELETE FROM jobs WHERE {where}"))

    await delete("job_id = 'r1'")  # not a backup: nothing to count again
    await delete("job_id = 'k2'")  # the latest backup, failed
    assert await summary() == ("k1", int(JobStatus.WARNING), at + timedelta(hours=1))
    assert await check(stores, engine, clock) == {}
    await delete("job_id IN ('k0', 'k1')")  # every good one, in one statement
    assert await summary() == (None, None, None)
    assert await check(stores, engine, clock) == {device: "overdue"}
    await stores.accounts.delete_user("alice")  # jobs and devices go together
    async with engine.connect() as conn:
        left = await conn.scalar(text("SELECT count(*) FROM devices"))
    assert left == 0
