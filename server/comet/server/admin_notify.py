"""``comet-admin notify`` (SMTP, recipients, test mail, delivery log) and
``comet-admin webhook`` (add, list, delete, deliveries)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from comet.agent.output import print_json, print_table, rfc3339
from comet.server.admin_session import Admin, AdminCliError, load_session, read_password
from comet.v1 import notify_pb2, notify_pb2_grpc

EVENTS = (
    "job.started, job.ended, job.missed, device.registered, device.online, device.offline, "
    "device.revoked, device.overdue, login.failures, policy.changed, admin.action"
)


class _Client:
    def __init__(self) -> None:
        admin = Admin(load_session())
        self.stub = notify_pb2_grpc.NotificationServiceStub(admin.channel)
        self.metadata = admin.metadata


def delivery_json(d: notify_pb2.Delivery) -> dict[str, Any]:
    return {
        "delivery_id": str(d.delivery_id),
        "kind": d.kind,
        "target": d.target,
        "event_type": d.event_type,
        "event_key": d.event_key,
        "status": d.status,
        "attempts": d.attempts,
        "created_at": rfc3339(d.created_at),
        "delivered_at": rfc3339(d.delivered_at) if d.HasField("delivered_at") else "",
        "next_attempt_at": rfc3339(d.next_attempt_at),
        "last_error": d.last_error,
        "last_response": d.last_response,
    }


def _smtp_json(s: notify_pb2.SmtpSettings) -> dict[str, Any]:
    return {
        "host": s.host,
        "port": s.port,
        "security": s.security,
        "username": s.username,
        "has_password": s.has_password,
        "from": s.sender,
        "console_url": s.console_url,
        "custom_ca": bool(s.ca_pem),
    }


def cmd_smtp_set(args: argparse.Namespace) -> None:
    c = _Client()
    password = read_password() if args.password_stdin else ""
    if password and not args.username:
        raise AdminCliError("--password-stdin needs --username")
    ca_pem = ""
    if args.ca_file:
        try:
            ca_pem = args.ca_file.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise AdminCliError(f"cannot read {args.ca_file}: {e}") from e
    reply = c.stub.SetSmtpSettings(
        notify_pb2.SmtpSettings(
            host=args.host,
            port=args.port or 0,
            security=args.security,
            username=args.username or "",
            password=password,
            sender=getattr(args, "from"),
            console_url=args.console_url or "",
            ca_pem=ca_pem,
        ),
        metadata=c.metadata,
        timeout=30,
    )
    if args.json:
        print_json(_smtp_json(reply))
    else:
        print(f"SMTP server {reply.host}:{reply.port} ({reply.security}) set")


def cmd_smtp_show(args: argparse.Namespace) -> None:
    c = _Client()
    reply = c.stub.GetSmtpSettings(
        notify_pb2.GetSmtpSettingsRequest(), metadata=c.metadata, timeout=30
    )
    row = _smtp_json(reply)
    if args.json:
        print_json(row)
    elif not reply.host:
        print("no SMTP server is set")
    else:
        for key, value in row.items():
            print(f"{key}: {value}")


def cmd_test_email(args: argparse.Namespace) -> None:
    c = _Client()
    reply = c.stub.SendTestEmail(
        notify_pb2.SendTestEmailRequest(address=args.address, timeout_seconds=args.timeout),
        metadata=c.metadata,
        timeout=args.timeout + 30,
    )
    if args.json:
        print_json(delivery_json(reply))
    if reply.status == "sent":
        if not args.json:
            print(f"test mail to {args.address} accepted: {reply.last_response}")
        return
    if reply.status == "pending" and not reply.attempts:
        raise AdminCliError(
            f"the test mail to {args.address} is queued but no worker sent it in {args.timeout} s"
        )
    raise AdminCliError(
        f"the test mail to {args.address} failed: {reply.last_error} (it is retried; "
        "see comet-admin notify deliveries)"
        if reply.status == "pending"
        else f"the test mail to {args.address} failed: {reply.last_error}"
    )


def cmd_recipient_add(args: argparse.Namespace) -> None:
    c = _Client()
    reply = c.stub.AddEmailRecipient(
        notify_pb2.EmailRecipient(
            username=args.user or "",
            address=args.address,
            job_rule=args.on,
            summary=args.summary,
        ),
        metadata=c.metadata,
        timeout=30,
    )
    if args.json:
        print_json({"recipient_id": reply.recipient_id})
    else:
        print(reply.recipient_id)


def _recipient_json(r: notify_pb2.EmailRecipient) -> dict[str, Any]:
    return {
        "recipient_id": r.recipient_id,
        "user": r.username,
        "address": r.address,
        "on": r.job_rule,
        "summary": r.summary,
    }


def cmd_recipient_list(args: argparse.Namespace) -> None:
    c = _Client()
    reply = c.stub.ListEmailRecipients(
        notify_pb2.ListEmailRecipientsRequest(), metadata=c.metadata, timeout=30
    )
    rows = [_recipient_json(r) for r in reply.recipients]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            row["user"] = row["user"] or "(administrators)"
        print_table(rows, ["recipient_id", "user", "address", "on", "summary"])


def cmd_recipient_delete(args: argparse.Namespace) -> None:
    c = _Client()
    c.stub.DeleteEmailRecipient(
        notify_pb2.DeleteEmailRecipientRequest(recipient_id=args.recipient_id),
        metadata=c.metadata,
        timeout=30,
    )
    print(f"recipient {args.recipient_id} deleted")


def _deliveries(args: argparse.Namespace, kind: str, target: str) -> None:
    c = _Client()
    reply = c.stub.ListDeliveries(
        notify_pb2.ListDeliveriesRequest(kind=kind, target=target, limit=args.limit),
        metadata=c.metadata,
        timeout=30,
    )
    rows = [delivery_json(d) for d in reply.deliveries]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            row["last"] = row["last_error"] or row["last_response"]
        print_table(
            rows,
            ["delivery_id", "target", "event_type", "status", "attempts", "created_at", "last"],
        )


def cmd_deliveries(args: argparse.Namespace) -> None:
    _deliveries(args, "email", args.address or "")


def webhook_json(w: notify_pb2.Webhook) -> dict[str, Any]:
    return {
        "webhook_id": w.webhook_id,
        "url": w.url,
        "events": list(w.events),
        "created_at": rfc3339(w.created_at),
    }


def cmd_webhook_add(args: argparse.Namespace) -> None:
    c = _Client()
    events = [e.strip() for value in args.events for e in value.split(",") if e.strip()]
    reply = c.stub.AddWebhook(
        notify_pb2.AddWebhookRequest(url=args.url, events=events), metadata=c.metadata, timeout=30
    )
    if args.json:
        print_json({**webhook_json(reply.webhook), "secret": reply.secret})
    else:
        print(f"webhook {reply.webhook.webhook_id}")
        print(f"secret {reply.secret}   (shown once: the receiver verifies signatures with it)")


def cmd_webhook_list(args: argparse.Namespace) -> None:
    c = _Client()
    reply = c.stub.ListWebhooks(notify_pb2.ListWebhooksRequest(), metadata=c.metadata, timeout=30)
    rows = [webhook_json(w) for w in reply.webhooks]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            row["events"] = ",".join(row["events"])
        print_table(rows, ["webhook_id", "url", "events", "created_at"])


def cmd_webhook_delete(args: argparse.Namespace) -> None:
    c = _Client()
    c.stub.DeleteWebhook(
        notify_pb2.DeleteWebhookRequest(webhook_id=args.webhook_id), metadata=c.metadata, timeout=30
    )
    print(f"webhook {args.webhook_id} deleted")


def cmd_webhook_deliveries(args: argparse.Namespace) -> None:
    _deliveries(args, "webhook", args.webhook_id or "")


def add_parsers(sub: Any) -> None:
    notify = sub.add_parser("notify", help="email reports").add_subparsers(
        dest="sub", required=True
    )
    smtp = notify.add_parser("smtp", help="the SMTP server mails go through").add_subparsers(
        dest="smtp", required=True
    )
    sset = smtp.add_parser("set", help="set the SMTP server (SUPER administrators)")
    sset.add_argument("--host", required=True)
    sset.add_argument("--port", type=int, help="default 587, or 465 with --security tls")
    sset.add_argument(
        "--security",
        choices=["starttls", "tls", "none"],
        default="starttls",
        help="starttls (default), tls (implicit, usually port 465) or none (loopback relays)",
    )
    sset.add_argument("--username")
    sset.add_argument("--password-stdin", action="store_true", help="read the password")
    sset.add_argument("--from", required=True, help="the sender address of every mail")
    sset.add_argument("--console-url", help="links in mails point below this URL")
    sset.add_argument(
        "--ca-file",
        type=Path,
        help="PEM CA certificate(s) to trust for the SMTP server's TLS instead of the system's",
    )
    sset.add_argument("--json", action="store_true")
    sset.set_defaults(func=cmd_smtp_set)
    show = smtp.add_parser("show", help="show the SMTP settings (never the password)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_smtp_show)

    test = notify.add_parser("test-email", help="send a test mail and wait for the outcome")
    test.add_argument("address")
    test.add_argument("--timeout", type=int, default=30)
    test.add_argument("--json", action="store_true")
    test.set_defaults(func=cmd_test_email)

    recipient = notify.add_parser("recipient", help="who gets which mail").add_subparsers(
        dest="recipient", required=True
    )
    radd = recipient.add_parser("add", help="mail an address about a user's jobs")
    radd.add_argument("address")
    radd.add_argument(
        "--user", help="the user whose jobs are reported; without it: every user (admins)"
    )
    radd.add_argument(
        "--on",
        choices=["all", "warnings", "errors", "none"],
        default="errors",
        help="which ended jobs are mailed: all, warnings (and errors), errors (incl. missed)",
    )
    radd.add_argument(
        "--summary",
        choices=["none", "daily", "weekly"],
        default="none",
        help="also a summary (for administrators: failed, missed and overdue devices)",
    )
    radd.add_argument("--json", action="store_true")
    radd.set_defaults(func=cmd_recipient_add)
    rls = recipient.add_parser("list")
    rls.add_argument("--json", action="store_true")
    rls.set_defaults(func=cmd_recipient_list)
    rrm = recipient.add_parser("delete")
    rrm.add_argument("recipient_id")
    rrm.set_defaults(func=cmd_recipient_delete)

    log = notify.add_parser("deliveries", help="the mail delivery log, newest first")
    log.add_argument("--address")
    log.add_argument("--limit", type=int, default=100)
    log.add_argument("--json", action="store_true")
    log.set_defaults(func=cmd_deliveries)

    webhook = sub.add_parser("webhook", help="signed HTTP callbacks").add_subparsers(
        dest="sub", required=True
    )
    wadd = webhook.add_parser("add", help="register a URL for event types")
    wadd.add_argument("url")
    wadd.add_argument("--events", action="append", required=True, help=f"comma-separated: {EVENTS}")
    wadd.add_argument("--json", action="store_true")
    wadd.set_defaults(func=cmd_webhook_add)
    wls = webhook.add_parser("list")
    wls.add_argument("--json", action="store_true")
    wls.set_defaults(func=cmd_webhook_list)
    wrm = webhook.add_parser("delete")
    wrm.add_argument("webhook_id")
    wrm.set_defaults(func=cmd_webhook_delete)
    wlog = webhook.add_parser("deliveries", help="calls made and their last response")
    wlog.add_argument("webhook_id", nargs="?")
    wlog.add_argument("--limit", type=int, default=100)
    wlog.add_argument("--json", action="store_true")
    wlog.set_defaults(func=cmd_webhook_deliveries)
