"""Email reports: composing a mail (plain text and HTML) from a queued payload and
sending it through the configured SMTP server."""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from comet.server.clock import Clock
from comet.server.notify.outbox import Delivery, DeliveryError
from comet.server.notify.settings import NotifySettings, SmtpSettings


def size_text(n: int) -> str:
    """A byte count as people read it (KiB, MiB, ...): mails and the web console."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _job_rows(job: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("Status", f"{job.get('status', '')} ({job.get('status_code', '')})"),
        ("Job", str(job.get("classification", ""))),
        ("User", str(job.get("user", ""))),
        ("Device", str(job.get("device_name") or job.get("device_id", ""))),
        ("Item", str(job.get("item_name") or job.get("item_id", ""))),
        ("Vault", str(job.get("vault_name") or job.get("vault_id", ""))),
        ("Started", str(job.get("started_at", ""))),
        ("Ended", str(job.get("ended_at", ""))),
        ("Duration", _duration(float(job.get("duration_seconds", 0)))),
        ("Files", str(job.get("files", 0))),
        ("Size", size_text(int(job.get("bytes", 0)))),
        ("Uploaded", size_text(int(job.get("uploaded_bytes", 0)))),
    ]


def _render(payload: dict[str, Any]) -> tuple[str, str, str]:
    """Subject, plain text and HTML body of a queued mail."""
    kind = payload.get("mail")
    if kind == "test":
        text = "This is a test message from Comet Server. Email reports reach this address."
        return "Comet Server test message", text + "\n", f"<p>{html.escape(text)}</p>"
    if kind == "summary":
        title = str(payload.get("title", "Comet summary"))
        lines = [str(x) for x in payload.get("lines", [])]
        text = title + "\n\n" + "\n".join(lines) + "\n"
        items = "".join(f"<li>{html.escape(x)}</li>" for x in lines)
        return title, text, f"<h2>{html.escape(title)}</h2><ul>{items}</ul>"
    job = dict(payload.get("job", {}))
    rows = _job_rows(job)
    errors = [str(x) for x in payload.get("errors", [])]
    link = str(payload.get("link", ""))
    subject = (
        f"[Comet] {job.get('status', '')}: {job.get('classification', '')} of "
        f"{job.get('item_name') or job.get('item_id', '')} on "
        f"{job.get('device_name') or job.get('device_id', '')}"
    )
    text = subject.removeprefix("[Comet] ") + "\n\n"
    text += "".join(f"{name + ':':10} {value}\n" for name, value in rows)
    if errors:
        text += "\nFirst errors:\n" + "".join(f"  {e}\n" for e in errors)
    if link:
        text += f"\nDetails: {link}\n"
    colour = {"SUCCESS": "#1a7f37", "WARNING": "#9a6700"}.get(str(job.get("status")), "#cf222e")
    table = "".join(
        f"<tr><th align='left'>{html.escape(n)}</th><td>{html.escape(v)}</td></tr>" for n, v in rows
    )
    body = (
        f"<h2 style='color:{colour}'>{html.escape(subject.removeprefix('[Comet] '))}</h2>"
        f"<table>{table}</table>"
    )
    if errors:
        body += "<h3>First errors</h3><pre>" + html.escape("\n".join(errors)) + "</pre>"
    if link:
        body += f"<p><a href='{html.escape(link, quote=True)}'>Open the job</a></p>"
    return subject, text, f"<html><body>{body}</body></html>"


def compose(payload: dict[str, Any], to: str, smtp: SmtpSettings, clock: Clock) -> EmailMessage:
    subject, text, body = _render(payload)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = smtp.sender
    message["To"] = to
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(body, subtype="html")
    return message


def send_message(smtp: SmtpSettings, message: EmailMessage) -> str:
    """Hands the message to the SMTP server (blocking); returns its reply."""
    try:
        context = ssl.create_default_context(cadata=smtp.ca_pem or None)
    except ssl.SSLError as e:
        raise DeliveryError(f"the SMTP CA certificates cannot be used: {e}") from e
    try:
        client: smtplib.SMTP
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)
            if smtp.username:
                client.login(smtp.username, smtp.password)
            refused = client.send_message(message)
            if refused:
                raise DeliveryError(f"the SMTP server refused {', '.join(refused)}")
            code, reply = client.noop()
            return f"{code} {reply.decode(errors='replace')}"
    except smtplib.SMTPRecipientsRefused as e:
        raise DeliveryError(f"the SMTP server refused the recipient: {e}", permanent=True) from e
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(f"SMTP {smtp.host}:{smtp.port}: {e}") from e


class EmailSender:
    def __init__(self, settings: NotifySettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    async def send(self, delivery: Delivery) -> str:
        smtp = await self._settings.smtp()
        if smtp is None:
            raise DeliveryError("no SMTP server is configured (comet-admin notify smtp set)")
        message = compose(delivery.payload, delivery.target, smtp, self._clock)
        return await asyncio.to_thread(send_message, smtp, message)
