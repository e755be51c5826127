"""Turns what happened into queued deliveries.

A pump (on every instance; one at a time holds a PostgreSQL advisory lock) reads
what changed since its cursor, re-reading an overlap so that rows committed late are
not skipped, and queues:

- ``job.started`` / ``job.ended`` (and ``job.missed`` for runs the server recorded as
  missed) from the jobs table: webhooks by event type, mails by each recipient's rule;
- device, login-failure, policy and admin-action events from the audit log;
- ``device.overdue`` for a device with schedules and no good backup for a while;
- daily or weekly summaries, per user and for administrators.

The event key of each delivery is unique per target, so reading a row twice, or two
pumps racing, never queues it twice; cursor and deliveries commit together.
Presence (``device.online`` / ``device.offline``) comes straight from the instance
holding the live connection (``presence``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.clock import Clock
from comet.server.notify.outbox import NewDelivery, Outbox
from comet.server.notify.settings import NotifySettings, Recipient
from comet.server.store import profile_document
from comet.server.store.availability import log_background_failure
from comet.server.store.jobs import JobClassification, JobStatus, Severity
from comet.server.store.models import (
    AuditEvent,
    Device,
    EmailRecipient,
    Job,
    JobLogEntry,
    NotifyDelivery,
    ServerSetting,
    User,
)

log = logging.getLogger(__name__)

CURSOR_KEY = "notify:cursor"
# Any constant: the pump's advisory lock, so one instance pumps at a time.
PUMP_LOCK = 0x636F6D6574
ERROR_STATUSES = frozenset(
    {
        JobStatus.ERROR,
        JobStatus.TIMEOUT,
        JobStatus.QUOTA_EXCEEDED,
        JobStatus.MISSED,
        JobStatus.ABANDONED,
    }
)
GOOD_STATUSES = (int(JobStatus.SUCCESS), int(JobStatus.WARNING))
FIRST_ERRORS = 5
COUNTED_MEMORY = 10_000
HOOKS_TTL = timedelta(seconds=5)


class EventMetrics(Protocol):
    def job_ended(self, classification: str, status: str, seconds: float) -> None: ...

    def login_failed(self) -> None: ...


@dataclass(frozen=True)
class EventPolicy:
    every_seconds: float = 5.0
    # Rows committed this late after their timestamp are still seen.
    overlap: timedelta = timedelta(minutes=2)
    # A webhook ``login.failures`` fires when an account reaches this many failed
    # logins within the window.
    login_failure_threshold: int = 5
    login_failure_window: timedelta = timedelta(minutes=15)
    # A device with enabled schedules and no good backup for this long is overdue.
    overdue_after: timedelta = timedelta(hours=26)
    # Looking for overdue devices reads every device's summary: not every round.
    overdue_every: timedelta = timedelta(minutes=5)


def rfc3339(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else ""


def mail_wanted(rule: str, status: JobStatus) -> bool:
    if rule == "all":
        return True
    if rule == "warnings":
        return status is not JobStatus.SUCCESS
    if rule == "errors":
        return status in ERROR_STATUSES
    return False


def _names(profile: dict[str, Any] | None) -> dict[str, str]:
    doc = profile_document.normalised(profile)
    names: dict[str, str] = {}
    for key, id_key in (("items", "item_id"), ("vaults", "vault_id")):
        for entry in doc[key]:
            if isinstance(entry, dict) and entry.get(id_key):
                names[str(entry[id_key])] = str(entry.get("name", ""))
    return names


def _status_name(code: int) -> str:
    try:
        return JobStatus(code).name
    except ValueError:
        return str(code)


def _classification_name(code: int) -> str:
    try:
        return JobClassification(code).name
    except ValueError:
        return str(code)


class EventPump:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        settings: NotifySettings,
        outbox: Outbox,
        policy: EventPolicy,
        *,
        metrics: EventMetrics | None = None,
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._settings = settings
        self._outbox = outbox
        self._policy = policy
        self._metrics = metrics
        # Metrics count what is new since the last round's cursor, once per instance.
        self._fresh_after = datetime.min.replace(tzinfo=UTC)
        self._counted: OrderedDict[str, None] = OrderedDict()
        self._overdue_checked = datetime.min.replace(tzinfo=UTC)
        self._hooks: tuple[datetime, dict[str, list[str]]] | None = None

    # ------------------------------------------------------------------ running

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as e:  # the database may be briefly away; try next round
                log_background_failure(log, "could not queue notifications", e)
            await asyncio.sleep(self._policy.every_seconds)

    async def run_once(self) -> int:
        """One round; returns how many deliveries were queued (0 when another
        instance holds the pump)."""
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            locked = await s.scalar(text(f"SELECT pg_try_advisory_xact_lock({PUMP_LOCK})"))
            if not locked:
                return 0
            stored = await s.scalar(
                select(ServerSetting.value).where(ServerSetting.key == CURSOR_KEY)
            )
            cursor = (
                datetime.fromisoformat(stored.decode()) if stored else now - self._policy.overlap
            )
            since = min(cursor, now - self._policy.overlap)
            webhooks = await self._settings.webhooks()
            recipients = await self._settings.recipients()
            deliveries: list[NewDelivery] = []
            self._fresh_after = cursor
            deliveries += await self._jobs(s, since, now, webhooks_by_event(webhooks), recipients)
            deliveries += await self._audit(s, since, now, webhooks_by_event(webhooks))
            if now - self._overdue_checked >= self._policy.overdue_every:
                deliveries += await self._overdue(s, now, webhooks_by_event(webhooks))
                self._overdue_checked = now
            deliveries += await self._summaries(s, now, recipients)
            added = await self._outbox.insert(s, deliveries)
            value = now.isoformat().encode()
            await s.execute(
                insert(ServerSetting)
                .values(key=CURSOR_KEY, value=value)
                .on_conflict_do_update(index_elements=["key"], set_={"value": value})
            )
        if added:
            self._outbox.wake()
        return added

    async def presence(self, device_id: str, *, online: bool) -> None:
        """A device's live connection opened or closed on this instance."""
        event = "device.online" if online else "device.offline"
        targets = (await self._hooks_cached()).get(event, [])
        if not targets:
            return
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(Device.name, User.username)
                    .join(User, User.id == Device.user_id)
                    .where(Device.id == device_id)
                )
            ).one_or_none()
        name, username = row if row is not None else ("", "")
        key = f"{event}:{device_id}:{uuid.uuid4().hex}"
        data = {"device_id": device_id, "device_name": name, "user": username}
        await self._outbox.enqueue([self._hook(w, key, event, data) for w in targets])

    async def _hooks_cached(self) -> dict[str, list[str]]:
        """Webhooks by event type, read at most every few seconds: presence changes
        come by the thousand when a fleet reconnects."""
        now = self._clock.now()
        if self._hooks is None or now - self._hooks[0] > HOOKS_TTL:
            self._hooks = (now, webhooks_by_event(await self._settings.webhooks()))
        return self._hooks[1]

    def _hook(self, webhook_id: str, key: str, event: str, data: dict[str, Any]) -> NewDelivery:
        payload = {"time": rfc3339(self._clock.now()), "data": data}
        return NewDelivery("webhook", webhook_id, key, event, payload)

    # ------------------------------------------------------------------ jobs

    async def _jobs(
        self,
        s: AsyncSession,
        since: datetime,
        now: datetime,
        hooks: dict[str, list[str]],
        recipients: list[Recipient],
    ) -> list[NewDelivery]:
        rows = (
            await s.execute(
                select(Job, User.username, User.profile, Device.name)
                .join(User, User.id == Job.user_id)
                .outerjoin(Device, Device.id == Job.device_id)
                .where(
                    (Job.last_report_at > since) & (Job.last_report_at <= now)
                    # The server's own changes (abandoned, revived, missed) come with a
                    # server log line (negative seq), not a report.
                    | Job.job_id.in_(
                        select(JobLogEntry.job_id).where(
                            JobLogEntry.seq < 0, JobLogEntry.time > since, JobLogEntry.time <= now
                        )
                    )
                )
                .order_by(Job.last_report_at)
            )
        ).all()
        smtp = await self._settings.smtp() if recipients else None
        console = smtp.console_url.rstrip("/") if smtp and smtp.console_url else ""
        out: list[NewDelivery] = []
        for job, username, profile, device_name in rows:
            status = JobStatus(job.status) if job.status in JobStatus._value2member_map_ else None
            data = self._job_data(job, username, _names(profile), device_name or "")
            # A job that started and ended between two rounds was never seen running:
            # its start is announced now, before its end (the key keeps it to once).
            for hook in hooks.get("job.started", []):
                if job.status != int(JobStatus.MISSED):
                    out.append(self._hook(hook, f"job.started:{job.job_id}", "job.started", data))
            if status is None or status.is_running:
                continue
            errors = await self._first_errors(s, job)
            data["errors"] = errors
            event = "job.missed" if status is JobStatus.MISSED else "job.ended"
            for name in {event, "job.ended"}:
                for hook in hooks.get(name, []):
                    out.append(self._hook(hook, f"{name}:{job.job_id}", name, data))
            link = f"{console}/jobs/{job.job_id}" if console else ""
            mail = {"mail": "job", "job": data, "errors": errors, "link": link}
            for r in recipients:
                owner_ok = not r.username or r.username == username
                if owner_ok and mail_wanted(r.job_rule, status):
                    out.append(NewDelivery("email", r.address, f"job:{job.job_id}", event, mail))
            # Found by a server log line (abandoned, missed): the change is new now.
            changed = job.last_report_at if job.last_report_at > since else now
            if self._first_count(f"job:{job.job_id}", changed) and self._metrics:
                self._metrics.job_ended(
                    data["classification"], data["status"], float(data["duration_seconds"])
                )
        return out

    def _first_count(self, key: str, when: datetime) -> bool:
        """Whether a metric should count this now: new since the last round (rows
        re-read in the overlap were counted then) and not counted here lately."""
        if when <= self._fresh_after or key in self._counted:
            return False
        self._counted[key] = None
        if len(self._counted) > COUNTED_MEMORY:
            self._counted.popitem(last=False)
        return True

    @staticmethod
    def _job_data(
        job: Job, username: str, names: dict[str, str], device_name: str
    ) -> dict[str, Any]:
        ended = job.ended_at
        duration = (ended - job.started_at).total_seconds() if ended else 0.0
        return {
            "job_id": job.job_id,
            "user": username,
            "device_id": job.device_id,
            "device_name": device_name,
            "item_id": job.item_id,
            "item_name": names.get(job.item_id, ""),
            "vault_id": job.vault_id,
            "vault_name": names.get(job.vault_id, ""),
            "classification": _classification_name(job.classification),
            "classification_code": job.classification,
            "status": _status_name(job.status),
            "status_code": job.status,
            "started_at": rfc3339(job.started_at),
            "ended_at": rfc3339(ended),
            "duration_seconds": round(max(0.0, duration), 3),
            "files": job.files,
            "bytes": job.bytes,
            "uploaded_bytes": job.uploaded_bytes,
            "snapshot_id": job.snapshot_id,
            "error_message": job.error_message,
        }

    async def _first_errors(self, s: AsyncSession, job: Job) -> list[str]:
        lines = list(
            await s.scalars(
                select(JobLogEntry.message)
                .where(
                    JobLogEntry.job_id == job.job_id,
                    JobLogEntry.severity >= int(Severity.ERROR),
                )
                .order_by(JobLogEntry.time, JobLogEntry.seq)
                .limit(FIRST_ERRORS)
            )
        )
        if job.error_message and job.error_message not in lines:
            lines.insert(0, job.error_message)
        return [line[:500] for line in lines[:FIRST_ERRORS]]

    # ------------------------------------------------------------------ audit log

    async def _audit(
        self, s: AsyncSession, since: datetime, now: datetime, hooks: dict[str, list[str]]
    ) -> list[NewDelivery]:
        events = list(
            await s.scalars(
                select(AuditEvent)
                .where(AuditEvent.time > since, AuditEvent.time <= now)
                .order_by(AuditEvent.id)
            )
        )
        out: list[NewDelivery] = []
        for e in events:
            data = {
                "audit_id": e.id,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "source_address": e.source_address,
                "success": e.success,
                "details": e.details,
                "time": rfc3339(e.time),
            }
            for event in await self._audit_types(s, e):
                for hook in hooks.get(event, []):
                    out.append(self._hook(hook, f"{event}:audit:{e.id}", event, data))
        return out

    async def _audit_types(self, s: AsyncSession, e: AuditEvent) -> list[str]:
        if e.action == "login":
            if e.success:
                return []
            if self._first_count(f"audit:{e.id}", e.time) and self._metrics:
                self._metrics.login_failed()
            failures = await s.scalar(
                select(func.count()).where(
                    AuditEvent.action == "login",
                    AuditEvent.target == e.target,
                    AuditEvent.success.is_(False),
                    AuditEvent.time > e.time - self._policy.login_failure_window,
                    AuditEvent.id <= e.id,
                )
            )
            # Exactly when the threshold is reached: one event per burst.
            return ["login.failures"] if failures == self._policy.login_failure_threshold else []
        if e.action == "device.register":
            return ["device.registered"]
        if e.action.startswith("login."):
            return []
        types = ["admin.action"] if e.success else []
        if e.action == "device.revoke":
            types.append("device.revoked")
        if e.action.startswith("policy.") and e.success:
            types.append("policy.changed")
        return types

    # ------------------------------------------------------------------ overdue

    async def _overdue(
        self, s: AsyncSession, now: datetime, hooks: dict[str, list[str]]
    ) -> list[NewDelivery]:
        targets = hooks.get("device.overdue", [])
        if not targets:
            return []
        out: list[NewDelivery] = []
        for device in await overdue_devices(s, now - self._policy.overdue_after):
            key = f"device.overdue:{device['device_id']}:{device['last_good_backup'] or 'never'}"
            for hook in targets:
                out.append(self._hook(hook, key, "device.overdue", device))
        return out

    # ------------------------------------------------------------------ summaries

    async def _summaries(
        self, s: AsyncSession, now: datetime, recipients: list[Recipient]
    ) -> list[NewDelivery]:
        out: list[NewDelivery] = []
        today = datetime(now.year, now.month, now.day, tzinfo=UTC)
        for r in recipients:
            if r.summary == "daily":
                start, end, label = today - timedelta(days=1), today, "Daily"
            elif r.summary == "weekly":
                end = today - timedelta(days=today.weekday())
                start, label = end - timedelta(days=7), "Weekly"
            else:
                continue
            key = f"summary:{r.recipient_id}:{start.date().isoformat()}"
            if await self._queued(s, r.address, key):
                continue
            if await self._recipient_created(s, r.recipient_id) > end:
                continue  # added after that period: its first summary is the next one
            if r.username:
                lines = await self._user_summary(s, r.username, start, end)
                title = f"{label} backup summary for {r.username}, {start.date()}"
            else:
                lines = await self._admin_summary(s, start, end, now)
                title = f"{label} Comet Server summary, {start.date()}"
            payload = {"mail": "summary", "title": title, "lines": lines}
            out.append(NewDelivery("email", r.address, key, "summary", payload))
        return out

    @staticmethod
    async def _queued(s: AsyncSession, address: str, key: str) -> bool:
        found = await s.scalar(
            select(NotifyDelivery.id).where(
                NotifyDelivery.kind == "email",
                NotifyDelivery.target == address,
                NotifyDelivery.event_key == key,
            )
        )
        return found is not None

    async def _recipient_created(self, s: AsyncSession, recipient_id: str) -> datetime:
        created = await s.scalar(
            select(EmailRecipient.created_at).where(EmailRecipient.id == recipient_id)
        )
        return created or self._clock.now()

    async def _user_summary(
        self, s: AsyncSession, username: str, start: datetime, end: datetime
    ) -> list[str]:
        rows = (
            await s.execute(
                select(Job.status, func.count())
                .join(User, User.id == Job.user_id)
                .where(User.username == username, Job.started_at >= start, Job.started_at < end)
                .group_by(Job.status)
            )
        ).all()
        counts = Counter({_status_name(status): int(n) for status, n in rows})
        if not counts:
            return ["No jobs ran in this period."]
        return [f"{name}: {n} job(s)" for name, n in sorted(counts.items())]

    async def _admin_summary(
        self, s: AsyncSession, start: datetime, end: datetime, now: datetime
    ) -> list[str]:
        failed = (
            await s.execute(
                select(User.username, Job.device_id, Job.status, func.count())
                .join(User, User.id == Job.user_id)
                .where(
                    Job.started_at >= start,
                    Job.started_at < end,
                    Job.status.in_([int(x) for x in ERROR_STATUSES]),
                )
                .group_by(User.username, Job.device_id, Job.status)
            )
        ).all()
        lines = [
            f"{_status_name(status)}: {n} job(s) on device {device} of {user}"
            for user, device, status, n in failed
        ]
        for device in await overdue_devices(s, now - self._policy.overdue_after):
            last = device["last_good_backup"] or "never"
            lines.append(
                f"OVERDUE: device {device['device_name']} ({device['device_id']}) of "
                f"{device['user']}, last good backup {last}"
            )
        return lines or ["No failed, missed or overdue devices."]


def webhooks_by_event(webhooks: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for w in webhooks:
        for event in w.events:
            out.setdefault(event, []).append(w.webhook_id)
    return out


def overdue_clause(good_since: datetime) -> ColumnElement[bool]:
    """An unrevoked device with an enabled schedule whose last good backup ended
    before ``good_since`` (or who never had one and was registered before it), from
    its backup summary (migration 0017): no profile and no job is read."""
    return and_(
        Device.revoked_at.is_(None),
        Device.backup_scheduled,
        func.coalesce(Device.last_good_backup_at, Device.registered_at) < good_since,
    )


async def overdue_devices(s: AsyncSession, good_since: datetime) -> list[dict[str, Any]]:
    """The overdue devices (``overdue_clause``) by user and device name."""
    rows = await s.execute(
        select(Device.id, Device.name, User.username, Device.last_good_backup_at)
        .join(User, User.id == Device.user_id)
        .where(overdue_clause(good_since))
        .order_by(User.username, Device.name, Device.id)
    )
    return [
        {"device_id": d, "device_name": name, "user": user, "last_good_backup": rfc3339(last)}
        for d, name, user, last in rows.all()
    ]
