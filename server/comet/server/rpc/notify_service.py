"""NotificationService: SMTP settings, email recipients, webhooks and the delivery
log. SUPER administrators only (admin.notify.manage in comet.server.authorization):
these reach outside the server (mail, URLs)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc

from comet.server import document_bounds
from comet.server.errors import InvalidRequestError
from comet.server.notify.outbox import Delivery, NewDelivery, Outbox
from comet.server.notify.settings import NotifySettings, Recipient, SmtpSettings, WebhookRecord
from comet.server.rpc import convert
from comet.server.rpc.auth_context import Authenticator, peer_address
from comet.server.rpc.errors import handles_errors
from comet.server.store.accounts import AccountStore
from comet.v1 import notify_pb2, notify_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]
TEST_TIMEOUT_SECONDS = 30


def _recipient(r: Recipient) -> notify_pb2.EmailRecipient:
    return notify_pb2.EmailRecipient(
        recipient_id=r.recipient_id,
        username=r.username,
        address=r.address,
        job_rule=r.job_rule,
        summary=r.summary,
    )


def _webhook(w: WebhookRecord) -> notify_pb2.Webhook:
    return notify_pb2.Webhook(
        webhook_id=w.webhook_id,
        url=w.url,
        events=list(w.events),
        created_at=convert.timestamp(w.created_at),
    )


def _delivery(d: Delivery) -> notify_pb2.Delivery:
    return notify_pb2.Delivery(
        delivery_id=d.delivery_id,
        kind=d.kind,
        target=d.target,
        event_type=d.event_type,
        event_key=d.event_key,
        status=d.status,
        attempts=d.attempts,
        created_at=convert.timestamp(d.created_at),
        delivered_at=convert.timestamp(d.delivered_at),
        next_attempt_at=convert.timestamp(d.next_attempt_at),
        last_error=d.last_error,
        last_response=d.last_response,
    )


def _smtp_reply(smtp: SmtpSettings | None) -> notify_pb2.SmtpSettings:
    if smtp is None:
        return notify_pb2.SmtpSettings()
    return notify_pb2.SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        has_password=bool(smtp.password),
        sender=smtp.sender,
        console_url=smtp.console_url,
        ca_pem=smtp.ca_pem,
    )


class NotificationService(notify_pb2_grpc.NotificationServiceServicer):
    def __init__(self, accounts: AccountStore, settings: NotifySettings, outbox: Outbox) -> None:
        self._accounts = accounts
        self._auth = Authenticator(accounts)
        self._settings = settings
        self._outbox = outbox

    async def _audit(self, context: Ctx, username: str, action: str, target: str) -> None:
        await self._accounts.audit(username, action, target, source=peer_address(context))

    @handles_errors
    async def SetSmtpSettings(
        self, request: notify_pb2.SmtpSettings, context: Ctx
    ) -> notify_pb2.SmtpSettings:
        admin = await self._auth.admin(context)
        document_bounds.check(request, what="the SMTP settings")
        password = request.password
        if not password and request.has_password:
            current = await self._settings.smtp()  # keep the stored one
            password = current.password if current else ""
        smtp = SmtpSettings(
            host=request.host,
            port=request.port or (465 if request.security == "tls" else 587),
            security=request.security or "starttls",
            username=request.username,
            password=password,
            sender=request.sender,
            console_url=request.console_url,
            ca_pem=request.ca_pem,
        )
        await self._settings.set_smtp(smtp)
        await self._audit(context, admin.username, "notify.smtp_set", request.host)
        return _smtp_reply(smtp)

    @handles_errors
    async def GetSmtpSettings(
        self, request: notify_pb2.GetSmtpSettingsRequest, context: Ctx
    ) -> notify_pb2.SmtpSettings:
        await self._auth.admin(context)
        return _smtp_reply(await self._settings.smtp())

    @handles_errors
    async def SendTestEmail(
        self, request: notify_pb2.SendTestEmailRequest, context: Ctx
    ) -> notify_pb2.Delivery:
        admin = await self._auth.admin(context)
        document_bounds.check(request, what="the test email")
        if await self._settings.smtp() is None:
            raise InvalidRequestError("no SMTP server is set: comet-admin notify smtp set …")
        key = f"test:{uuid.uuid4()}"
        await self._outbox.enqueue(
            [NewDelivery("email", request.address, key, "test", {"mail": "test"})]
        )
        await self._audit(context, admin.username, "notify.test_email", request.address)
        timeout = min(request.timeout_seconds or TEST_TIMEOUT_SECONDS, 120)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = [
                d
                for d in await self._outbox.deliveries(kind="email", target=request.address)
                if d.event_key == key
            ]
            done = found and (found[0].status != "pending" or found[0].attempts > 0)
            if done or asyncio.get_running_loop().time() > deadline:
                return _delivery(found[0]) if found else notify_pb2.Delivery()
            await asyncio.sleep(0.2)

    @handles_errors
    async def AddEmailRecipient(
        self, request: notify_pb2.EmailRecipient, context: Ctx
    ) -> notify_pb2.EmailRecipient:
        admin = await self._auth.admin(context)
        document_bounds.check(request, what="the email recipient")
        recipient = await self._settings.add_recipient(
            username=request.username,
            address=request.address,
            job_rule=request.job_rule or "errors",
            summary=request.summary or "none",
        )
        await self._audit(context, admin.username, "notify.recipient_add", recipient.address)
        return _recipient(recipient)

    @handles_errors
    async def ListEmailRecipients(
        self, request: notify_pb2.ListEmailRecipientsRequest, context: Ctx
    ) -> notify_pb2.ListEmailRecipientsReply:
        await self._auth.admin(context)
        recipients = await self._settings.recipients()
        return notify_pb2.ListEmailRecipientsReply(recipients=[_recipient(r) for r in recipients])

    @handles_errors
    async def DeleteEmailRecipient(
        self, request: notify_pb2.DeleteEmailRecipientRequest, context: Ctx
    ) -> notify_pb2.DeleteEmailRecipientReply:
        admin = await self._auth.admin(context)
        document_bounds.check(request, what="the request")
        await self._settings.delete_recipient(request.recipient_id)
        await self._audit(context, admin.username, "notify.recipient_delete", request.recipient_id)
        return notify_pb2.DeleteEmailRecipientReply()

    @handles_errors
    async def AddWebhook(
        self, request: notify_pb2.AddWebhookRequest, context: Ctx
    ) -> notify_pb2.AddWebhookReply:
        admin = await self._auth.admin(context)
        document_bounds.check(request, what="the webhook")
        record, secret = await self._settings.add_webhook(request.url, list(request.events))
        await self._audit(context, admin.username, "webhook.add", record.webhook_id)
        return notify_pb2.AddWebhookReply(webhook=_webhook(record), secret=secret)

    @handles_errors
    async def ListWebhooks(
        self, request: notify_pb2.ListWebhooksRequest, context: Ctx
    ) -> notify_pb2.ListWebhooksReply:
        await self._auth.admin(context)
        return notify_pb2.ListWebhooksReply(
            webhooks=[_webhook(w) for w in await self._settings.webhooks()]
        )

    @handles_errors
    async def DeleteWebhook(
        self, request: notify_pb2.DeleteWebhookRequest, context: Ctx
    ) -> notify_pb2.DeleteWebhookReply:
        admin = await self._auth.admin(context)
        document_bounds.check(request, what="the request")
        await self._settings.delete_webhook(request.webhook_id)
        await self._audit(context, admin.username, "webhook.delete", request.webhook_id)
        return notify_pb2.DeleteWebhookReply()

    @handles_errors
    async def ListDeliveries(
        self, request: notify_pb2.ListDeliveriesRequest, context: Ctx
    ) -> notify_pb2.ListDeliveriesReply:
        await self._auth.admin(context)
        found = await self._outbox.deliveries(
            kind=request.kind, target=request.target, limit=min(request.limit or 100, 1000)
        )
        return notify_pb2.ListDeliveriesReply(deliveries=[_delivery(d) for d in found])
