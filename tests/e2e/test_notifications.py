"""Email reports and webhooks end to end: real comet-server processes, a real agent,
a real SMTP server (aiosmtpd) and a real HTTP receiver on loopback; metrics scraped
over HTTP and parsed with Prometheus's parser; services listed by reflection."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client.parser import text_string_to_metric_families

from comet.server.notify.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from comet.v1 import common_pb2, control_pb2
from tests.e2e.test_reliability import CuttableProxy, health, proxied_server  # noqa: F401
from tests.fixtures.devices import DeviceClient
from tests.fixtures.notify_peers import SmtpSink, WebhookReceiver
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import (
    ALICE_PASSWORD,
    BIN,
    AdminCli,
    AgentProcess,
    ServerProcess,
    free_port,
    wait_for,
)

FAST = (
    "--notify-poll-seconds",
    "0.2",
    "--notify-retry-seconds",
    "0.3",
    "--notify-max-retry-seconds",
    "0.6",
)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port())
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    try:
        yield r
    finally:
        r.close()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_a_failed_backup_mails_once_and_calls_a_signed_webhook(
    postgres_cluster: PostgresCluster,
    short_tmp: Path,
    smtp: SmtpSink,
    receiver: WebhookReceiver,
) -> None:
    metrics_port = free_port()
    server = ServerProcess(
        short_tmp / "server",
        postgres_cluster.fresh_database(),
        free_port(),
        extra_args=(
            *FAST,
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
            "--metrics-refresh-seconds",
            "0.5",
        ),
    )
    server.data_dir.mkdir()
    server.add_admin()
    server.start()
    agent = AgentProcess(short_tmp / "agent")
    agent.root.mkdir()
    try:
        admin = AdminCli(short_tmp / "admin.json", server)
        admin.login()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        before = scrape(metrics_url)
        smtp.start()
        admin(
            "notify",
            "smtp",
            "set",
            "--host",
            "127.0.0.1",
            "--port",
            str(smtp.port),
            "--security",
            "none",
            "--from",
            "comet@backup.test",
            "--console-url",
            "https://backup.test/console",
        )
        test = admin("notify", "test-email", "ops@example.test", "--json").json()
        assert test["status"] == "sent" and test["last_response"].startswith("250")
        assert [m["To"] for m in smtp.messages] == ["ops@example.test"]
        smtp.messages.clear()

        admin("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        admin(
            "notify", "recipient", "add", "alice@example.test", "--user", "alice", "--on", "errors"
        )
        hook = admin(
            "webhook", "add", receiver.url, "--events", "job.started,job.ended", "--json"
        ).json()
        assert [w["webhook_id"] for w in admin("webhook", "list", "--json").json()] == [
            hook["webhook_id"]
        ]

        presence = admin(
            "webhook", "add", receiver.url + "/presence", "--events", "device.online", "--json"
        ).json()
        agent.start()
        agent.comet(
            "login",
            "--server",
            server.url,
            "--username",
            "alice",
            "--password-stdin",
            "--device-name",
            "alice-laptop",
            stdin=ALICE_PASSWORD + "\n",
        )
        agent.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
        agent.comet(
            "item",
            "add",
            "dump",
            "--type",
            "program",
            "--command",
            "echo partial; echo 'pg_dump: connection refused' >&2; exit 3",
            "--save-as",
            "dump.sql",
        )
        job = agent.comet("backup", "dump", "--vault", "v", "--wait", "--json", check=False).json()
        assert job["status"] == "error"

        [mail] = wait_for(lambda: smtp.messages, timeout=30, what="the report mail")
        ended = wait_for(lambda: receiver.of_type("job.ended"), timeout=30, what="the webhook")
        time.sleep(1.5)  # several pump and worker rounds: nothing more may come
        assert len(smtp.messages) == 1 and len(receiver.of_type("job.ended")) == 1
        assert len(receiver.of_type("job.started")) == 1

        assert mail["To"] == "alice@example.test" and mail["From"] == "comet@backup.test"
        assert "ERROR" in mail["Subject"] and "dump" in mail["Subject"]
        text, html = parts(mail)
        for part in (text, html):
            assert "alice-laptop" in part and "dump" in part and "ERROR" in part
            assert f"https://backup.test/console/jobs/{job['job_id']}" in part
        assert "Vault:" in text and "v" in text and "Duration:" in text
        assert "First errors" in text and "<table>" in html

        [call] = ended
        assert verify(
            hook["secret"],
            call.headers[TIMESTAMP_HEADER],
            call.body,
            call.headers[SIGNATURE_HEADER],
        )
        assert not verify(
            "whsec_other", call.headers[TIMESTAMP_HEADER], call.body, call.headers[SIGNATURE_HEADER]
        )
        body = call.json()
        assert (body["schema"], body["version"], body["type"]) == ("comet.webhook", 1, "job.ended")
        data = body["data"]
        assert data["job_id"] == job["job_id"] and data["status"] == "ERROR"
        assert data["user"] == "alice" and data["device_name"] == "alice-laptop"
        assert data["item_name"] == "dump" and data["vault_name"] == "v"
        assert data["errors"], "the first error lines travel with the event"

        [online] = wait_for(lambda: receiver.of_type("device.online"), what="device.online")
        assert online.path == "/hook/presence"
        assert online.json()["data"]["device_name"] == "alice-laptop"
        assert verify(
            presence["secret"],
            online.headers[TIMESTAMP_HEADER],
            online.body,
            online.headers[SIGNATURE_HEADER],
        )

        log = admin("webhook", "deliveries", hook["webhook_id"], "--json").json()
        assert {d["status"] for d in log} == {"sent"}
        assert all(d["last_response"].startswith("200") for d in log)

        after = wait_for(
            lambda: (
                s
                if metric(
                    s := scrape(metrics_url), "comet_jobs", classification="BACKUP", status="ERROR"
                )
                else None
            ),
            timeout=15,
            what="the job in the metrics",
        )
        assert metric(before, "comet_jobs", classification="BACKUP", status="ERROR") == 0
        assert metric(after, "comet_jobs_ended_total", classification="BACKUP", status="ERROR") == 1
        assert metric(after, "comet_job_duration_seconds_count", classification="BACKUP") == 1
        assert metric(after, "comet_connected_agents") == 1
        assert metric(
            after, "comet_rpc_calls_total", method="/comet.v1.AgentService/ReportJob", code="OK"
        ) > metric(before, "comet_rpc_calls_total", method="/comet.v1.AgentService/ReportJob")
        assert metric(after, "comet_rpc_duration_seconds_count") > 0
        assert metric(after, "comet_notify_deliveries_total", kind="email", result="ok") == 2
        assert metric(after, "comet_notify_deliveries_total", kind="webhook", result="ok") >= 3
        assert ("comet_notify_queue_depth", (("kind", "email"),)) in after
        assert metric(after, "comet_db_pool_connections", state="size") > 0

        admin(
            "login",
            "--server",
            server.url,
            "--username",
            "admin",
            "--password-stdin",
            stdin="wrong-password\n",
            check=False,
        )
        wait_for(
            lambda: metric(scrape(metrics_url), "comet_login_failures_total") == 1,
            timeout=15,
            what="the failed login in the metrics",
        )

        # The agent's own state: when it last heard the server, when it runs next.
        item_id = agent.comet("item", "list", "--json").json()[0]["item_id"]
        vault_id = agent.comet("vault", "list", "--json").json()[0]["vault_id"]
        state = agent.status()
        assert state["last_contact"] and state["next_scheduled_run"] is None
        agent.comet(
            "schedule", "add", "--item", item_id, "--vault", vault_id, "--weekly", "sun", "03:00"
        )
        planned = wait_for(lambda: agent.status()["next_scheduled_run"], what="next run")
        assert planned.endswith("Z") and state["outbox_pending"] == 0

        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        channel.close()
        assert {
            "comet.v1.AuthService",
            "comet.v1.AgentService",
            "comet.v1.AdminService",
            "comet.v1.StorageService",
            "comet.v1.NotificationService",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.health.v1.Health",
        } <= services

        # A good backup sets the gauge the "not backed up for 26 h" alert reads.
        agent.comet("item", "add", "ok", "--type", "program", "--command", "echo fine",
                    "--save-as", "ok.txt")  # fmt: skip
        agent.comet("backup", "ok", "--vault", "v", "--wait")
        last_good = wait_for(
            lambda: metric(
                scrape(metrics_url),
                "comet_device_last_good_backup_timestamp_seconds",
                user="alice",
                device_name="alice-laptop",
            ),
            timeout=15,
            what="the last good backup in the metrics",
        )
        assert abs(last_good - time.time()) < 120
    finally:
        agent.kill()
        server.kill()


def failed_report(job_id: str) -> control_pb2.JobReport:
    return control_pb2.JobReport(
        job=common_pb2.Job(
            job_id=job_id,
            item_id="item",
            vault_id="vault",
            classification=common_pb2.JOB_CLASSIFICATION_BACKUP,
            status=common_pb2.JOB_STATUS_ERROR,
            error_message="the vault is full",
        ),
        final=True,
    )


def test_mail_waits_for_the_smtp_server_across_a_restart_and_goes_once_from_two_instances(
    postgres_cluster: PostgresCluster, short_tmp: Path, smtp: SmtpSink
) -> None:
    database = postgres_cluster.fresh_database()
    key = short_tmp / "secret.key"
    key.write_text("11" * 32 + "\n")
    servers = []
    for name in ("one", "two"):
        s = ServerProcess(
            short_tmp / name,
            database,
            free_port(),
            extra_args=(*FAST, "--secret-key-file", str(key)),
        )
        s.data_dir.mkdir()
        servers.append(s)
    one, two = servers
    one.add_admin()
    one.start()
    two.start()
    devices = DeviceClient(two.url)
    try:
        admin = AdminCli(short_tmp / "admin.json", one)
        admin.login()
        admin(
            "notify",
            "smtp",
            "set",
            "--host",
            "127.0.0.1",
            "--port",
            str(smtp.port),
            "--security",
            "none",
            "--from",
            "comet@backup.test",
        )
        admin("notify", "recipient", "add", "ops@example.test", "--on", "errors")
        admin("user", "add", "bob", "--password-stdin", stdin="bob-password-1\n")
        device = devices.login("bob", "bob-pc", "bob-password-1")
        jobs = [f"job-{i}" for i in range(8)]
        for job_id in jobs:
            devices.agent.ReportJob(failed_report(job_id), metadata=device.metadata, timeout=10)

        def attempted() -> list[tuple[str, int, str]]:
            with psycopg.connect(database) as conn:
                rows = conn.execute(
                    "SELECT status, attempts, last_error FROM notify_outbox"
                ).fetchall()
            return rows if len(rows) == 8 and all(r[1] >= 2 for r in rows) else []

        rows = wait_for(attempted, timeout=30, what="failed attempts while SMTP is down")
        assert {r[0] for r in rows} == {"pending"}
        assert all(f"127.0.0.1:{smtp.port}" in r[2] for r in rows)
        shown = admin("notify", "deliveries", "--json").json()
        assert len(shown) == 8 and all(d["last_error"] for d in shown)

        one.stop()  # a restart while the mails wait
        smtp.start()
        one.start()
        wait_for(lambda: len(smtp.messages) >= 8, timeout=30, what="the queued mails")
        time.sleep(1.5)  # more worker rounds on both instances: nothing more may come
        subjects = sorted(m.get_body(("plain",)).get_content() for m in smtp.messages)  # type: ignore[union-attr]
        assert len(smtp.messages) == 8
        assert sum("the vault is full" in s for s in subjects) == 8
        assert {r["status"] for r in admin("notify", "deliveries", "--json").json()} == {"sent"}
        assert {json.dumps(sorted(m["To"] for m in smtp.messages))} == {
            json.dumps(["ops@example.test"] * 8)
        }
    finally:
        devices.channel.close()
        one.kill()
        two.kill()


def test_reflection_answers_and_health_follows_the_database_while_it_is_away(
    proxied_server: tuple[ServerProcess, CuttableProxy],  # noqa: F811
) -> None:
    server, proxy = proxied_server
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    assert health(server, "comet.v1.NotificationService") == serving
    proxy.cut()
    wait_for(lambda: health(server) == not_serving, timeout=30, what="NOT_SERVING")
    assert health(server, "comet.v1.NotificationService") == not_serving
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        # Reflection needs no database: it still lists the services.
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "comet.v1.NotificationService" in services
    finally:
        channel.close()
    proxy.restore()
    wait_for(lambda: health(server) == serving, timeout=30, what="SERVING again")


def test_a_busy_metrics_port_stops_the_start_with_a_clear_error(
    postgres_cluster: PostgresCluster, short_tmp: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                str(BIN / "comet-server"),
                "serve",
                "--data-dir",
                str(short_tmp),
                "--database-url",
                postgres_cluster.fresh_database(),
                "--listen",
                f"127.0.0.1:{free_port()}",
                "--metrics-listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0 and "listening on" not in result.stdout
    assert f"port {port} is in use" in result.stderr and "--metrics-listen" in result.stderr
