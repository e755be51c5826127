"""What administrators configure for notifications: the SMTP server, email
recipients with their report rules, and webhooks. Secrets are sealed at rest."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from comet.server.clock import Clock
from comet.server.errors import InvalidRequestError, NotFoundError
from comet.server.secret_box import SecretBox
from comet.server.store.models import EmailRecipient, ServerSetting, User, Webhook

SMTP_KEY = "notify:smtp"
SMTP_CONTEXT = "notify:smtp:password"
SECURITY = ("none", "starttls", "tls")
JOB_RULES = ("all", "warnings", "errors", "none")
SUMMARIES = ("none", "daily", "weekly")
EVENT_TYPES = (
    "job.started",
    "job.ended",
    "job.missed",
    "device.registered",
    "device.online",
    "device.offline",
    "device.revoked",
    "device.overdue",
    "login.failures",
    "policy.changed",
    "admin.action",
)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # none | starttls | tls (implicit)
    username: str = ""
    password: str = ""
    sender: str = ""
    # Links in mails point here: the console's address, e.g. https://backup.example/
    console_url: str = ""
    timeout_seconds: float = 20.0
    # PEM certificates trusted for the SMTP server's TLS instead of the system's CAs
    # (a relay with a private CA); empty: the system's.
    ca_pem: str = ""

    def validated(self) -> SmtpSettings:
        if not self.host:
            raise InvalidRequestError("an SMTP server needs a host name")
        if not 0 < self.port < 65536:
            raise InvalidRequestError(f"{self.port} is not a TCP port")
        if self.security not in SECURITY:
            raise InvalidRequestError(f"SMTP security is one of {', '.join(SECURITY)}")
        if not self.sender or "@" not in self.sender:
            raise InvalidRequestError("mails need a sender address (--from NAME@DOMAIN)")
        if self.password and self.security == "none":
            raise InvalidRequestError(
                "refusing to send an SMTP password over a plaintext connection: "
                "use --security starttls or tls"
            )
        return self


@dataclass(frozen=True)
class Recipient:
    recipient_id: str
    username: str  # "" for an administrator's address
    address: str
    job_rule: str
    summary: str


@dataclass(frozen=True)
class WebhookRecord:
    webhook_id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime


def _check_address(address: str) -> str:
    address = address.strip()
    if "@" not in address or any(c in address for c in " \r\n<>,;"):
        raise InvalidRequestError(f"{address!r} is not an email address")
    return address


def _check_events(events: list[str]) -> tuple[str, ...]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise InvalidRequestError(
            f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}"
        )
    if not events:
        raise InvalidRequestError("a webhook needs at least one event type (--events …)")
    return tuple(dict.fromkeys(events))


def _check_url(url: str) -> str:
    if not (url.startswith("https://") or url.startswith("http://")):
        raise InvalidRequestError(f"{url!r} is not an http:// or https:// URL")
    return url


class NotifySettings:
    def __init__(self, engine: AsyncEngine, clock: Clock, box: SecretBox) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._box = box

    # ------------------------------------------------------------------ SMTP

    async def set_smtp(self, settings: SmtpSettings) -> None:
        settings = settings.validated()
        stored = asdict(settings)
        if settings.password:
            stored["password"] = self._box.seal(settings.password, context=SMTP_CONTEXT)
        value = json.dumps(stored).encode()
        async with self._sessions() as s, s.begin():
            await s.execute(
                insert(ServerSetting)
                .values(key=SMTP_KEY, value=value)
                .on_conflict_do_update(index_elements=["key"], set_={"value": value})
            )

    async def smtp(self) -> SmtpSettings | None:
        """The SMTP settings with the password opened, or None if never set."""
        async with self._sessions() as s:
            value = await s.scalar(select(ServerSetting.value).where(ServerSetting.key == SMTP_KEY))
        if value is None:
            return None
        stored = json.loads(value)
        if stored.get("password"):
            stored["password"] = self._box.open(stored["password"], context=SMTP_CONTEXT)
        return SmtpSettings(**stored)

    # ------------------------------------------------------------------ recipients

    async def add_recipient(
        self, *, username: str, address: str, job_rule: str, summary: str
    ) -> Recipient:
        if job_rule not in JOB_RULES:
            raise InvalidRequestError(f"the job rule is one of {', '.join(JOB_RULES)}")
        if summary not in SUMMARIES:
            raise InvalidRequestError(f"the summary is one of {', '.join(SUMMARIES)}")
        address = _check_address(address)
        async with self._sessions() as s, s.begin():
            user_id = None
            if username:
                user_id = await s.scalar(select(User.id).where(User.username == username))
                if user_id is None:
                    raise NotFoundError(f"no user {username!r}")
            recipient_id = str(uuid.uuid4())
            s.add(
                EmailRecipient(
                    id=recipient_id,
                    user_id=user_id,
                    address=address,
                    job_rule=job_rule,
                    summary=summary,
                    created_at=self._clock.now(),
                )
            )
        return Recipient(recipient_id, username, address, job_rule, summary)

    async def recipients(self, *, user_id: str | None = None) -> list[Recipient]:
        """Every recipient, or a user's own plus the administrators' addresses."""
        query = select(EmailRecipient, User.username).outerjoin(
            User, User.id == EmailRecipient.user_id
        )
        if user_id is not None:
            query = query.where(
                (EmailRecipient.user_id == user_id) | EmailRecipient.user_id.is_(None)
            )
        async with self._sessions() as s:
            rows = (await s.execute(query.order_by(EmailRecipient.created_at))).all()
        return [
            Recipient(r.id, username or "", r.address, r.job_rule, r.summary)
            for r, username in rows
        ]

    async def delete_recipient(self, recipient_id: str) -> None:
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                delete(EmailRecipient).where(EmailRecipient.id == recipient_id)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFoundError(f"no email recipient {recipient_id}")

    # ------------------------------------------------------------------ webhooks

    async def add_webhook(self, url: str, events: list[str]) -> tuple[WebhookRecord, str]:
        """Registers a webhook; returns it and its signing secret (shown once)."""
        record = WebhookRecord(
            str(uuid.uuid4()), _check_url(url), _check_events(events), self._clock.now()
        )
        secret = "whsec_" + secrets.token_urlsafe(32)
        async with self._sessions() as s, s.begin():
            s.add(
                Webhook(
                    id=record.webhook_id,
                    url=record.url,
                    events=list(record.events),
                    secret=self._box.seal(secret, context=f"webhook:{record.webhook_id}"),
                    created_at=record.created_at,
                )
            )
        return record, secret

    async def webhooks(self) -> list[WebhookRecord]:
        async with self._sessions() as s:
            rows = await s.scalars(select(Webhook).order_by(Webhook.created_at))
            return [WebhookRecord(w.id, w.url, tuple(w.events), w.created_at) for w in rows]

    async def webhook_secret(self, webhook_id: str) -> tuple[str, str] | None:
        """The webhook's URL and opened secret, or None once it was deleted."""
        async with self._sessions() as s:
            row = await s.get(Webhook, webhook_id)
        if row is None:
            return None
        return row.url, self._box.open(row.secret, context=f"webhook:{webhook_id}")

    async def delete_webhook(self, webhook_id: str) -> None:
        async with self._sessions() as s, s.begin():
            result = await s.execute(delete(Webhook).where(Webhook.id == webhook_id))
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFoundError(f"no webhook {webhook_id}")
