"""Notification queue, event pump and missed runs of every schedule kind, against a
real PostgreSQL with a fake clock (delivery peers are stand-ins that count)."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.app import Stores
from comet.server.errors import InvalidRequestError
from comet.server.notify.email import EmailSender
from comet.server.notify.events import EventPolicy, EventPump
from comet.server.notify.outbox import (
    Delivery,
    DeliveryError,
    NewDelivery,
    Outbox,
    OutboxPolicy,
)
from comet.server.notify.settings import NotifySettings, SmtpSettings
from comet.server.notify.webhooks import WebhookSender, verify
from comet.server.schedule_times import ScheduleTimes
from comet.server.secret_box import SecretBox
from comet.server.tls import ensure_self_signed
from comet.v1 import common_pb2, control_pb2
from tests.fixtures.notify_peers import SmtpSink, WebhookReceiver
from tests.fixtures.processes import free_port
from tests.server.conftest import FakeClock, RpcServer, Session
from tests.server.test_jobs import alice, report, scheduled_profile  # noqa: F401

ERROR = common_pb2.JOB_STATUS_ERROR
SUCCESS = common_pb2.JOB_STATUS_SUCCESS


class CountingSender:
    def __init__(self, *, fail: int = 0, permanent: bool = False, delay: float = 0.0) -> None:
        self.sent: list[Delivery] = []
        self.fail = fail
        self.permanent = permanent
        self.delay = delay

    async def send(self, delivery: Delivery) -> str:
        await asyncio.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise DeliveryError("peer down", permanent=self.permanent, response="503 busy")
        self.sent.append(delivery)
        return "250 ok"


def deliveries(n: int, kind: str = "webhook") -> list[NewDelivery]:
    return [NewDelivery(kind, "t", f"e{i}", "job.ended", {"i": i}) for i in range(n)]


async def test_two_workers_make_each_delivery_once(engine: AsyncEngine, clock: FakeClock) -> None:
    sender = CountingSender(delay=0.01)
    policy = OutboxPolicy(first_retry_seconds=1)
    one = Outbox(engine, clock, {"webhook": sender}, policy)
    two = Outbox(engine, clock, {"webhook": sender}, policy)
    assert await one.enqueue(deliveries(30)) == 30
    assert await two.enqueue(deliveries(30)) == 0  # the same events: queued once

    async def drain(outbox: Outbox) -> int:
        made = 0
        while await outbox.deliver_one():
            made += 1
        return made

    made = await asyncio.gather(drain(one), drain(two), drain(one), drain(two))
    assert sum(made) == 30 and all(made)  # every worker took part
    assert Counter(d.event_key for d in sender.sent) == {f"e{i}": 1 for i in range(30)}
    assert await one.depth() == {}
    assert {d.status for d in await one.deliveries()} == {"sent"}


async def test_failures_back_off_exponentially_then_deliver(
    engine: AsyncEngine, clock: FakeClock
) -> None:
    sender = CountingSender(fail=2)
    outbox = Outbox(engine, clock, {"email": sender}, OutboxPolicy(first_retry_seconds=10))
    await outbox.enqueue(deliveries(1, "email"))
    assert await outbox.deliver_one()
    [d] = await outbox.deliveries()
    assert (d.status, d.attempts, d.last_error, d.last_response) == (
        "pending",
        1,
        "peer down",
        "503 busy",
    )
    assert d.next_attempt_at is not None
    assert timedelta(seconds=9) <= d.next_attempt_at - clock.now() <= timedelta(seconds=11)
    assert not await outbox.deliver_one()  # not due yet
    clock.advance(seconds=11)
    assert await outbox.deliver_one()
    [d] = await outbox.deliveries()
    assert d.next_attempt_at is not None
    assert timedelta(seconds=18) <= d.next_attempt_at - clock.now() <= timedelta(seconds=22)
    clock.advance(seconds=22)
    assert await outbox.deliver_one()
    [d] = await outbox.deliveries()
    assert (d.status, d.attempts, d.last_error, d.last_response) == ("sent", 3, "", "250 ok")
    assert len(sender.sent) == 1


async def test_a_permanent_failure_is_not_retried(engine: AsyncEngine, clock: FakeClock) -> None:
    sender = CountingSender(fail=1, permanent=True)
    outbox = Outbox(engine, clock, {"webhook": sender}, OutboxPolicy())
    await outbox.enqueue(deliveries(1))
    assert await outbox.deliver_one()
    clock.advance(days=1)
    assert not await outbox.deliver_one()
    [d] = await outbox.deliveries()
    assert (d.status, d.attempts) == ("failed", 1)


async def test_ended_jobs_are_queued_by_each_recipients_rule_and_only_once(
    rpc: RpcServer,
    alice: Session,  # noqa: F811
    engine: AsyncEngine,
    clock: FakeClock,
    secret_box: SecretBox,
) -> None:
    settings = NotifySettings(engine, clock, secret_box)
    outbox = Outbox(engine, clock, {}, OutboxPolicy())
    pump = EventPump(engine, clock, settings, outbox, EventPolicy(login_failure_threshold=3))
    await settings.add_recipient(
        username="alice", address="a@x.test", job_rule="errors", summary="none"
    )
    await settings.add_recipient(username="", address="ops@x.test", job_rule="all", summary="none")
    await settings.add_recipient(
        username="alice", address="quiet@x.test", job_rule="none", summary="none"
    )
    hook, secret = await settings.add_webhook("http://127.0.0.1:9/h", ["job.ended", "job.started"])
    assert secret.startswith("whsec_")
    assert await pump.run_once() == 0  # nothing happened yet

    await rpc.agent.ReportJob(report("good", status=SUCCESS), metadata=alice.metadata)
    failed = report("bad", status=ERROR)
    failed.log.append(
        common_pb2.LogEntry(seq=1, severity=common_pb2.SEVERITY_ERROR, message="disk on fire")
    )
    await rpc.agent.ReportJob(failed, metadata=alice.metadata)
    await rpc.agent.ReportJob(report("running"), metadata=alice.metadata)
    clock.advance(seconds=1)
    await pump.run_once()
    clock.advance(seconds=1)
    assert await pump.run_once() == 0  # the overlap is read again: nothing new
    queued = {(d.kind, d.target, d.event_key) for d in await outbox.deliveries()}
    assert queued == {
        ("email", "a@x.test", "job:bad"),
        ("email", "ops@x.test", "job:bad"),
        ("email", "ops@x.test", "job:good"),
        ("webhook", hook.webhook_id, "job.ended:bad"),
        ("webhook", hook.webhook_id, "job.ended:good"),
        ("webhook", hook.webhook_id, "job.started:running"),
        # Jobs that ended before a round saw them running are announced started too.
        ("webhook", hook.webhook_id, "job.started:bad"),
        ("webhook", hook.webhook_id, "job.started:good"),
    }
    [mail] = await outbox.deliveries(target="a@x.test")
    assert mail.payload["job"]["status"] == "ERROR"
    assert mail.payload["errors"] == ["disk on fire"]
    assert mail.payload["job"]["user"] == "alice"

    # The running job ends later: one more webhook and mails, once.
    clock.advance(seconds=30)
    await rpc.agent.ReportJob(report("running", status=ERROR), metadata=alice.metadata)
    clock.advance(seconds=1)
    await pump.run_once()
    await pump.run_once()
    keys = Counter(d.event_key for d in await outbox.deliveries())
    assert keys["job.ended:running"] == 1 and keys["job:running"] == 2
    assert keys["job.started:running"] == 1

    # A job the server abandons (no report: only its log line is new) is reported too.
    await rpc.agent.ReportJob(report("silent"), metadata=alice.metadata)
    clock.advance(minutes=11)
    assert await rpc.stores.jobs.abandon_silent(timedelta(minutes=10)) == ["silent"]
    clock.advance(seconds=1)
    await pump.run_once()
    abandoned = await outbox.deliveries(target="a@x.test")
    assert [d.payload["job"]["status"] for d in abandoned if d.event_key == "job:silent"] == [
        "ABANDONED"
    ]


async def test_login_failures_fire_once_at_the_threshold(
    rpc: RpcServer, engine: AsyncEngine, clock: FakeClock, secret_box: SecretBox
) -> None:
    settings = NotifySettings(engine, clock, secret_box)
    outbox = Outbox(engine, clock, {}, OutboxPolicy())
    pump = EventPump(engine, clock, settings, outbox, EventPolicy(login_failure_threshold=3))
    await settings.add_webhook("http://127.0.0.1:9/h", ["login.failures", "device.registered"])
    await rpc.add_user("carol")
    await rpc.device("carol")
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError):
            await rpc.auth.Login(control_pb2.LoginRequest(username="carol", auth_key=b"x" * 32))
        clock.advance(seconds=1)
        await pump.run_once()
    types = Counter(d.event_type for d in await outbox.deliveries())
    assert types == {"login.failures": 1, "device.registered": 1}


async def test_weekly_monthly_and_once_runs_are_recorded_as_missed(
    rpc: RpcServer,
    alice: Session,  # noqa: F811
    stores: Stores,
    clock: FakeClock,
) -> None:
    # Now: Monday 2026-01-05 09:00 UTC.
    once = common_pb2.Schedule(frequency=common_pb2.SCHEDULE_FREQUENCY_ONCE)
    once.once_at.FromDatetime(datetime(2026, 1, 5, 9, 30))
    await scheduled_profile(rpc, alice, once)
    clock.advance(hours=1, minutes=1)
    assert len((await stores.maintenance.run_once()).missed) == 1
    clock.advance(hours=5)
    assert (await stores.maintenance.run_once()).missed == []  # once is once


def test_weekly_monthly_and_once_due_times() -> None:
    utc = ZoneInfo("UTC")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 4, 1, tzinfo=UTC)
    weekly = ScheduleTimes(frequency=8013, hour=3, weekdays=(2, 5))  # Wed, Sat
    runs = weekly.runs_between(utc, start, start + timedelta(days=10))
    assert [t.strftime("%a %d %H:%M") for t in runs] == [
        "Sat 03 03:00",
        "Wed 07 03:00",
        "Sat 10 03:00",
    ]
    monthly = ScheduleTimes(frequency=8014, hour=23, minute=15, day_of_month=31)
    assert [t.strftime("%m-%d %H:%M") for t in monthly.runs_between(utc, start, end)] == [
        "01-31 23:15",
        "02-28 23:15",  # a shorter month: its last day
        "03-31 23:15",
    ]
    berlin = monthly.runs_between(ZoneInfo("Europe/Berlin"), start, end)
    # 23:15 local: CET (UTC+1) in winter, CEST (UTC+2) by the end of March.
    assert [t.strftime("%m-%d %H:%M") for t in berlin] == [
        "01-31 22:15",
        "02-28 22:15",
        "03-31 21:15",
    ]
    once = ScheduleTimes(frequency=8010, once_at=datetime(2026, 2, 1, 12, tzinfo=UTC))
    assert once.runs_between(utc, start, end) == [datetime(2026, 2, 1, 12, tzinfo=UTC)]
    assert once.runs_between(utc, end, end + timedelta(days=1)) == []
    assert ScheduleTimes.from_json(
        {"frequency": 8010, "once_at": "2026-02-01T12:00:00Z"}
    ).once_at == datetime(2026, 2, 1, 12, tzinfo=UTC)


async def test_daily_summaries_and_overdue_devices(
    rpc: RpcServer,
    alice: Session,  # noqa: F811
    engine: AsyncEngine,
    clock: FakeClock,
    secret_box: SecretBox,
) -> None:
    settings = NotifySettings(engine, clock, secret_box)
    outbox = Outbox(engine, clock, {}, OutboxPolicy())
    pump = EventPump(engine, clock, settings, outbox, EventPolicy())
    mine = await settings.add_recipient(
        username="alice", address="a@x.test", job_rule="none", summary="daily"
    )
    await settings.add_recipient(
        username="", address="ops@x.test", job_rule="none", summary="weekly"
    )
    await settings.add_webhook("http://127.0.0.1:9/h", ["device.overdue"])
    await scheduled_profile(
        rpc, alice, common_pb2.Schedule(frequency=common_pb2.SCHEDULE_FREQUENCY_DAILY, hour=10)
    )
    await rpc.agent.ReportJob(report("ok", status=SUCCESS), metadata=alice.metadata)
    await rpc.agent.ReportJob(report("bad", status=ERROR), metadata=alice.metadata)
    await pump.run_once()
    assert await outbox.deliveries() == []  # the period they were added in is not over

    clock.current = datetime(2026, 1, 6, 0, 5, tzinfo=UTC)  # Tuesday, just after midnight
    await pump.run_once()
    await pump.run_once()
    [daily] = await outbox.deliveries()
    assert (daily.target, daily.event_key) == (
        "a@x.test",
        f"summary:{mine.recipient_id}:2026-01-05",
    )
    assert daily.payload["title"] == "Daily backup summary for alice, 2026-01-05"
    assert sorted(daily.payload["lines"]) == ["ERROR: 1 job(s)", "SUCCESS: 1 job(s)"]

    # Monday: the weekly admin summary lists the failure and, 26 h after the last good
    # backup, the overdue device (also one device.overdue webhook).
    clock.current = datetime(2026, 1, 12, 0, 5, tzinfo=UTC)
    await pump.run_once()
    await pump.run_once()
    [weekly] = await outbox.deliveries(target="ops@x.test")
    lines = weekly.payload["lines"]
    assert any(line.startswith("ERROR: 1 job(s) on device") for line in lines)
    assert any(line.startswith("OVERDUE: device laptop") for line in lines)
    [overdue] = await outbox.deliveries(kind="webhook")
    assert overdue.payload["data"]["device_id"] == alice.device_id


async def test_a_webhook_503_is_retried_and_logged_then_signed_delivery_succeeds(
    engine: AsyncEngine, clock: FakeClock, secret_box: SecretBox
) -> None:
    receiver = WebhookReceiver(fail_first=2)
    try:
        settings = NotifySettings(engine, clock, secret_box)
        outbox = Outbox(
            engine,
            clock,
            {"webhook": WebhookSender(settings, clock)},
            OutboxPolicy(first_retry_seconds=5),
        )
        hook, secret = await settings.add_webhook(receiver.url, ["admin.action"])
        payload = {"time": "2026-01-05T09:00:00Z", "data": {"action": "user.add"}}
        await outbox.enqueue(
            [NewDelivery("webhook", hook.webhook_id, "k1", "admin.action", payload)]
        )
        assert await outbox.deliver_one()
        [d] = await outbox.deliveries()
        assert (d.status, d.last_response) == ("pending", "503 busy")
        assert "answered 503" in d.last_error
        clock.advance(seconds=6)
        assert await outbox.deliver_one()
        clock.advance(seconds=12)
        assert await outbox.deliver_one()
        [d] = await outbox.deliveries()
        assert (d.status, d.attempts, d.last_response) == ("sent", 3, "200 thanks")
        [call] = receiver.calls
        assert call.headers["Comet-Webhook-Id"] == "k1"
        assert verify(
            secret,
            call.headers["Comet-Webhook-Timestamp"],
            call.body,
            call.headers["Comet-Webhook-Signature"],
        )
        assert call.json() == {
            "schema": "comet.webhook",
            "version": 1,
            "id": "k1",
            "type": "admin.action",
            "time": "2026-01-05T09:00:00Z",
            "data": {"action": "user.add"},
        }
        # A deleted webhook's queued calls fail for good instead of retrying.
        await outbox.enqueue(
            [NewDelivery("webhook", hook.webhook_id, "k2", "admin.action", payload)]
        )
        await settings.delete_webhook(hook.webhook_id)
        assert await outbox.deliver_one()
        [d2] = await outbox.deliveries(limit=1)
        assert (d2.status, d2.last_error) == ("failed", "the webhook was deleted")
    finally:
        receiver.close()


def _tls_context(tmp: Path) -> tuple[ssl.SSLContext, str]:
    pair = ensure_self_signed(tmp, ["127.0.0.1", "localhost"], tls_dir=tmp)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pair.cert, pair.key)
    return context, pair.cert.read_text()


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    ok = auth.login == b"comet" and auth.password == b"smtp-secret"
    return AuthResult(success=ok, handled=False)


async def test_starttls_and_implicit_tls_with_a_login_and_a_private_ca(
    engine: AsyncEngine, clock: FakeClock, secret_box: SecretBox, tmp_path: Path
) -> None:
    context, ca_pem = _tls_context(tmp_path)
    settings = NotifySettings(engine, clock, secret_box)
    outbox = Outbox(engine, clock, {"email": EmailSender(settings, clock)}, OutboxPolicy())
    for security, options in (
        ("starttls", {"tls_context": context, "require_starttls": True, "auth_require_tls": True}),
        # aiosmtpd offers AUTH on implicit TLS only when not asked to require TLS.
        ("tls", {"ssl_context": context, "auth_require_tls": False}),
    ):
        sink = SmtpSink(free_port())
        sink.start(authenticator=_authenticator, **options)
        try:
            smtp = SmtpSettings(
                host="127.0.0.1",
                port=sink.port,
                security=security,
                username="comet",
                password="smtp-secret",
                sender="comet@backup.test",
            )
            # The system's CAs do not know this certificate: refused, not sent.
            await settings.set_smtp(smtp)
            await outbox.enqueue(
                [NewDelivery("email", "a@x.test", f"{security}1", "test", {"mail": "test"})]
            )
            assert await outbox.deliver_one()
            [failed] = await outbox.deliveries(limit=1)
            assert "CERTIFICATE_VERIFY_FAILED" in failed.last_error and not sink.messages
            # Trusted through the private CA: delivered, after logging in.
            await settings.set_smtp(dataclasses.replace(smtp, ca_pem=ca_pem))
            await outbox.enqueue(
                [NewDelivery("email", "a@x.test", f"{security}2", "test", {"mail": "test"})]
            )
            assert await outbox.deliver_one()
            [sent] = await outbox.deliveries(limit=1)
            assert sent.status == "sent", sent.last_error
            [mail] = sink.messages
            assert mail["Subject"] == "Comet Server test message"
            # A wrong password is an error the log shows.
            await settings.set_smtp(dataclasses.replace(smtp, ca_pem=ca_pem, password="nope"))
            await outbox.enqueue(
                [NewDelivery("email", "a@x.test", f"{security}3", "test", {"mail": "test"})]
            )
            assert await outbox.deliver_one()
            [refused] = await outbox.deliveries(limit=1)
            assert refused.status == "pending" and "535" in refused.last_error
        finally:
            sink.stop()
    stored = await settings.smtp()
    assert stored is not None and stored.password == "nope"  # opened from its sealed form
    with pytest.raises(InvalidRequestError, match="plaintext"):
        await settings.set_smtp(dataclasses.replace(smtp, security="none"))
