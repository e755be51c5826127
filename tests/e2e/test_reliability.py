"""Job history and service survive things being killed on purpose, with real processes:
the agent SIGKILLed in the middle of jobs of every kind, and the embedded PostgreSQL's
postmaster SIGKILLed under a running server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from comet.server.embedded_postgres import EmbeddedPostgres
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import (
    AdminCli,
    AgentProcess,
    CliResult,
    ServerProcess,
    add_alice,
    free_port,
    wait_for,
)


def setup_item(agent: AgentProcess, tmp: Path, *, files: int = 40) -> None:
    source = tmp / "src"
    source.mkdir()
    for i in range(files):
        (source / f"file-{i}.bin").write_bytes(os.urandom(64 * 1024))
    agent.comet("vault", "add", "v", "--type", "local", "--path", str(tmp / "vault"))
    agent.comet("item", "add", "docs", "--type", "files", "--include", str(source))


def job_kinds(tmp: Path, round_: int, *, first: str = "docs") -> list[tuple[str, ...]]:
    """Ten short jobs of different kinds, all on one vault (so they run one at a time),
    the first a backup of item ``first``."""
    out = tmp / f"restore-{round_}"
    return [
        ("backup", first, "--vault", "v"),
        ("verify", "--vault", "v"),
        ("restore", "--vault", "v", "latest", "--item", "docs", "--to", str(out / "a")),
        ("backup", "docs", "--vault", "v"),
        ("retention", "--vault", "v"),
        ("reindex", "--vault", "v"),
        ("restore", "--vault", "v", "latest", "--item", "docs", "--simulate"),
        ("unlock", "--vault", "v"),
        ("verify", "--vault", "v", "--read-data"),
        ("backup", "docs", "--vault", "v"),
    ]


def server_jobs(admin: AdminCli) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = admin("jobs", "--json").json()
    return jobs


def test_sigkill_during_ten_jobs_then_ten_more_every_record_once(
    admin: AdminCli, alice: AgentProcess, short_tmp: Path
) -> None:
    setup_item(alice, short_tmp)
    first = alice.comet("backup", "docs", "--vault", "v", "--wait", "--json").json()["job_id"]

    # A backup of a program's output that takes a minute holds the vault while the
    # other nine queue behind it; the agent dies under them.
    slow = "sleep 60; head -c 100000 /dev/urandom"
    alice.comet("item", "add", "slow", "--type", "program", "--command", slow, "--save-as", "s")
    interrupted = [
        alice.comet(*args, "--json").json()["job_id"]
        for args in job_kinds(short_tmp, 1, first="slow")
    ]
    assert len(alice.status()["running_jobs"]) == 10
    alice.kill()
    alice.start()
    # The killed agent's lock is left in the vault: it must not stop these.
    after = [
        alice.comet(*args, "--wait", "--json", check=False).json()["job_id"]
        for args in job_kinds(short_tmp, 2)
    ]
    started = time.monotonic()
    expected = {first, *interrupted, *after}
    assert len(expected) == 21

    def all_arrived() -> list[dict[str, Any]] | None:
        jobs = server_jobs(admin)
        return jobs if expected <= {j["job_id"] for j in jobs} else None

    jobs = wait_for(all_arrived, timeout=10, interval=0.3, what="all 21 records on the server")
    took = time.monotonic() - started
    counts = Counter(j["job_id"] for j in jobs)
    assert all(n == 1 for n in counts.values()) and set(counts) == expected, counts
    by_id = {j["job_id"]: j for j in jobs}
    kinds = {by_id[j]["classification"] for j in interrupted}
    assert {"backup", "restore", "deep_verify", "retention", "reindex", "unlock"} <= kinds, kinds
    # Cut off by the kill (not by a server timeout), or done before it.
    statuses = [(by_id[j]["classification"], by_id[j]["status"]) for j in interrupted]
    assert any(status == "abandoned" for _, status in statuses), statuses
    assert all(
        by_id[j]["abandoned_by"] == ("agent_restart" if by_id[j]["status"] == "abandoned" else None)
        for j in interrupted
    ), [by_id[j] for j in interrupted]
    assert all(status != "running" for _, status in statuses), statuses
    done = [(by_id[j]["classification"], by_id[j]["status"]) for j in after]
    assert all(status in ("success", "warning") for _, status in done), done
    status = alice.status()
    assert status["outbox_pending"] == 0 and status["outbox_rejected"] == 0
    assert status["last_error"] is None
    print(f"all 21 records on the server {took:.1f} s after the last job ended")


def test_a_server_restart_mid_job_loses_neither_the_record_nor_its_log(
    server: ServerProcess, admin: AdminCli, alice: AgentProcess, short_tmp: Path
) -> None:
    slow = "echo begun >&2; sleep 3; head -c 100000 /dev/urandom"
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    alice.comet("item", "add", "slow", "--type", "program", "--command", slow, "--save-as", "s")
    job_id = alice.comet("backup", "slow", "--vault", "v", "--json").json()["job_id"]
    wait_for(lambda: any(j["job_id"] == job_id for j in server_jobs(admin)), what="the job started")
    server.kill()  # SIGKILL mid-job
    wait_for(lambda: not alice.status()["connected"], what="the outage noticed")
    status = alice.status()
    assert status["last_error"] and "\n" not in status["last_error"]
    server.start()
    done = wait_for(
        lambda: (
            (j := alice.comet("job", "log", job_id, "--json").json())["job"]["status"] != "running"
            and j
        ),
        timeout=30,
        what="the job ended",
    )
    assert done["job"]["status"] == "warning"  # the program wrote to stderr

    def shipped() -> list[dict[str, Any]] | None:
        rows = [j for j in server_jobs(admin) if j["job_id"] == job_id]
        return rows if rows and rows[0]["status"] == "warning" else None

    [row] = wait_for(shipped, timeout=15, what="the final record on the server")
    assert row["snapshot_id"] == done["job"]["snapshot_id"]
    on_server = [e["message"] for e in admin("job", "log", job_id, "--json").json()]
    assert on_server == [e["message"] for e in done["entries"]]
    assert len(on_server) >= 3 and len(set(on_server)) == len(on_server)
    wait_for(lambda: alice.status()["connected"], what="reconnected")
    status = alice.status()
    assert status["last_error"] is None and status["outbox_pending"] == 0


def one_line(result: CliResult) -> bool:
    return result.returncode == 0 or len(result.stderr.strip().splitlines()) == 1


def test_sigkill_of_the_embedded_postmaster_the_server_restarts_it_and_rides_through(
    short_tmp: Path, agent: AgentProcess
) -> None:
    server = ServerProcess(short_tmp / "embedded", None, free_port())
    server.data_dir.mkdir()
    # The cluster initialised without syncing (seconds saved); the server runs it as usual.
    fast = EmbeddedPostgres(server.data_dir, fast=True)
    fast.start()
    fast.stop()
    server.add_admin()
    server.start()
    data_dir = server.data_dir
    try:
        admin = AdminCli(short_tmp / "admin.json", server)
        admin.login()
        add_alice(server, admin, agent)
        setup_item(agent, short_tmp, files=4)
        agent.comet("schedule", "add", "--item", "docs", "--vault", "v", "--every", "3")
        before = len(server.log.read_text().splitlines())

        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()

        # In the gap: a manual backup succeeds on the cached profile, every admin
        # command either works or fails with one line.
        gap_errors = []
        backup = agent.comet("backup", "docs", "--vault", "v", "--wait", "--json").json()
        assert backup["status"] == "success"
        for args in (("jobs", "--json"), ("user", "list", "--json"), ("device", "list")):
            result = admin(*args, check=False)
            assert one_line(result), result.stderr
            if result.returncode:
                gap_errors.append(result.stderr.strip())

        def serving() -> bool:
            result = admin("jobs", "--json", check=False)
            assert one_line(result), result.stderr
            if result.returncode:
                gap_errors.append(result.stderr.strip())
            return result.returncode == 0

        wait_for(serving, timeout=30, interval=0.2, what="the server serving again")
        back_after = time.monotonic() - killed
        assert gap_errors, "the kill was not noticed at all"
        assert all(
            e.endswith("the server's database is unavailable; try again shortly")
            for e in gap_errors
        ), gap_errors

        # The gap's backups (manual and scheduled) reach the history afterwards.
        scheduled_in_gap = [
            j["job_id"]
            for j in agent.comet("history", "--json").json()
            if j["classification"] == "backup" and j["job_id"] != backup["job_id"]
        ]
        wanted = {backup["job_id"], *scheduled_in_gap}
        wait_for(
            lambda: wanted <= {j["job_id"] for j in server_jobs(admin)},
            timeout=30,
            what="the gap's backups on the server",
        )
        assert agent.status()["connected"]

        log = server.log.read_text().splitlines()[before:]
        assert any("restarting it" in line for line in log), log
        assert not any("Traceback" in line for line in log), "\n".join(log)
        print(f"serving again {back_after:.1f} s after the postmaster was killed")
        assert server.stop() == 0
    finally:
        server.kill()
        pg = EmbeddedPostgres(data_dir)
        if pg.is_running():
            pg.start()
            pg.stop()


class CuttableProxy:
    """A TCP forwarder in front of the test PostgreSQL that can cut every connection
    and refuse new ones (the fault), then let them through again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.open = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def proxied_server(
    postgres_cluster: PostgresCluster, short_tmp: Path
) -> Iterator[tuple[ServerProcess, CuttableProxy]]:
    url = urlsplit(postgres_cluster.fresh_database())
    assert url.hostname and url.port
    proxy = CuttableProxy((url.hostname, url.port))
    netloc = url.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
    data_dir = short_tmp / "server"
    data_dir.mkdir()
    server = ServerProcess(data_dir, urlunsplit(url._replace(netloc=netloc)), free_port())
    server.add_admin()
    server.start()
    try:
        yield server, proxy
    finally:
        server.kill()
        proxy.close()


def health(server: ServerProcess, service: str = "") -> int:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)
    finally:
        channel.close()


def test_an_external_database_away_means_not_serving_and_unavailable_until_it_is_back(
    proxied_server: tuple[ServerProcess, CuttableProxy], short_tmp: Path
) -> None:
    server, proxy = proxied_server
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    assert health(server) == serving
    assert health(server, "comet.v1.AdminService") == serving
    admin = AdminCli(short_tmp / "admin.json", server)
    admin.login()

    proxy.cut()
    wait_for(lambda: health(server) == not_serving, timeout=10, what="NOT_SERVING")
    result = admin("user", "list", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "comet-admin: error: the server's database is unavailable; try again shortly"
    ]

    proxy.restore()
    wait_for(lambda: health(server) == serving, timeout=10, what="SERVING again")
    assert [u["username"] for u in admin("user", "list", "--json").json()] == ["admin"]
