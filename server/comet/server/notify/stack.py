"""Builds the notification parts of one server instance from its configuration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.clock import Clock
from comet.server.config import ServerConfig
from comet.server.metrics import ServerMetrics
from comet.server.notify.email import EmailSender
from comet.server.notify.events import EventPolicy, EventPump
from comet.server.notify.outbox import Outbox, OutboxPolicy
from comet.server.notify.settings import NotifySettings
from comet.server.notify.webhooks import WebhookSender
from comet.server.secret_box import SecretBox


@dataclass(frozen=True)
class Notifications:
    settings: NotifySettings
    outbox: Outbox
    pump: EventPump


def open_notifications(
    engine: AsyncEngine,
    clock: Clock,
    config: ServerConfig,
    box: SecretBox,
    metrics: ServerMetrics | None,
) -> Notifications:
    settings = NotifySettings(engine, clock, box)
    outbox = Outbox(
        engine,
        clock,
        {"email": EmailSender(settings, clock), "webhook": WebhookSender(settings, clock)},
        OutboxPolicy(
            poll_seconds=config.notify_poll_seconds,
            first_retry_seconds=config.notify_retry_seconds,
            max_retry_seconds=max(config.notify_retry_seconds, config.notify_max_retry_seconds),
        ),
        metrics=metrics,
    )
    pump = EventPump(
        engine,
        clock,
        settings,
        outbox,
        EventPolicy(
            every_seconds=config.notify_poll_seconds,
            login_failure_threshold=config.max_failed_logins,
            login_failure_window=timedelta(seconds=config.failed_login_window_seconds),
            overdue_after=timedelta(hours=config.overdue_hours),
        ),
        metrics=metrics,
    )
    return Notifications(settings, outbox, pump)
