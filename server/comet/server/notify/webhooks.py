"""Webhook calls: a JSON body with a stable, versioned schema, signed with the
webhook's own secret.

Headers: ``Comet-Webhook-Id`` (the delivery's event key, for de-duplication on the
receiver's side), ``Comet-Webhook-Timestamp`` (Unix seconds) and
``Comet-Webhook-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``. A receiver
recomputes the HMAC, compares in constant time and rejects old timestamps."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any

from comet.server.clock import Clock
from comet.server.notify.outbox import Delivery, DeliveryError
from comet.server.notify.settings import NotifySettings

SCHEMA = "comet.webhook"
VERSION = 1
SIGNATURE_HEADER = "Comet-Webhook-Signature"
TIMESTAMP_HEADER = "Comet-Webhook-Timestamp"
ID_HEADER = "Comet-Webhook-Id"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and tests): whether ``signature`` is ours for this body."""
    try:
        expected = sign(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature)


def envelope(delivery: Delivery) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "id": delivery.event_key,
        "type": delivery.event_type,
        "time": delivery.payload.get("time", ""),
        "data": delivery.payload.get("data", {}),
    }


def post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> str:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read(2000).decode(errors="replace")
            return f"{response.status} {text}".strip()
    except urllib.error.HTTPError as e:
        text = f"{e.code} {e.read(2000).decode(errors='replace')}".strip()
        # A receiver that calls the request itself wrong will not change its mind.
        permanent = 400 <= e.code < 500 and e.code not in (408, 409, 425, 429)
        raise DeliveryError(f"{url} answered {e.code}", permanent=permanent, response=text) from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DeliveryError(f"{url}: {getattr(e, 'reason', e)}") from e


class WebhookSender:
    def __init__(self, settings: NotifySettings, clock: Clock, *, timeout: float = 15.0) -> None:
        self._settings = settings
        self._clock = clock
        self._timeout = timeout

    async def send(self, delivery: Delivery) -> str:
        found = await self._settings.webhook_secret(delivery.target)
        if found is None:
            raise DeliveryError("the webhook was deleted", permanent=True)
        url, secret = found
        body = json.dumps(envelope(delivery), sort_keys=True, separators=(",", ":")).encode()
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Comet-Server-Webhook/1",
            ID_HEADER: delivery.event_key,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        return await asyncio.to_thread(post, url, headers, body, self._timeout)
