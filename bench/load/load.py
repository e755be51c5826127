"""Load on one Comet Server instance from thousands of simulated agents, on loopback.

Starts ``comet-server serve`` (embedded PostgreSQL, private temp dir), registers
devices in bulk through AuthService.Login, then holds one live stream per device
from a lightweight client (grpc.aio, streams spread over a few channels) and
measures, each phase bounded in time:

* connected agents held, and the server's RSS per idle connection;
* remote-command round trips (AdminService.Dispatch refetch_profile, answered by
  the simulated agent): p50 / p99;
* job progress reports ingested per second (AgentService.ReportJob) from agents
  whose backup is running (each agent's job is started first; the rate of those
  first, durable reports is reported too, as job starts per second);
* a server restart under the whole fleet (``--restart``): the server is stopped
  (SIGTERM) and started again on the same port; each simulated agent redials with
  the agent's own back-off (comet.agent.backoff, the defaults of AgentConfig). Measured:
  seconds from the new server listening to the last agent accepted again, the peak
  Connect calls per second it took, and the dispatch p50 / p99 right after.

Usage: bench/load/run [--agents 2000] [--report-seconds 10] [--dispatches 400] [--restart]
       bench/load/run --instances 3 --ramp 1000,3000,6000   (behind nginx: bench/load/fleet.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp

from comet.agent.backoff import Backoff
from comet.agent.config import AgentConfig
from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server.embedded_postgres import EmbeddedPostgres
from comet.server.passwords import new_token, token_hash
from comet.v1 import admin_pb2, admin_pb2_grpc, common_pb2, control_pb2, control_pb2_grpc

BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "load-admin-password"
USER_PASSWORD = "load-user-password"
TARGETS = {
    "agents_held": 2000,
    "reports_per_second": 1000.0,
    "dispatch_p99_ms": 250.0,
    "rss_per_connection_kb": 100.0,
    "reconnect_all_seconds": 15.0,
    "dispatch_after_restart_p99_ms": 250.0,
}
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LoadOptions:
    agents: int = 2000
    streams_per_channel: int = 50
    dispatches: int = 400
    dispatch_concurrency: int = 8
    report_seconds: float = 10.0
    report_concurrency: int = 64
    keep_dir: bool = False
    restart: bool = False


@dataclass
class Figures:
    agents_wanted: int = 0
    agents_held: int = 0
    register_seconds: float = 0.0
    connect_seconds: float = 0.0
    rss_before_kb: int = 0
    rss_connected_kb: int = 0
    rss_per_connection_kb: float = 0.0
    dispatches: int = 0
    dispatch_errors: int = 0
    dispatch_p50_ms: float = 0.0
    dispatch_p99_ms: float = 0.0
    reports: int = 0
    report_errors: int = 0
    reports_per_second: float = 0.0
    job_starts: int = 0
    job_start_errors: int = 0
    job_starts_per_second: float = 0.0
    restart_down_seconds: float = 0.0
    reconnected_after_restart: int = 0
    reconnect_all_seconds: float = 0.0
    reconnect_p50_seconds: float = 0.0
    connects_per_second_peak: int = 0
    connect_attempts_after_restart: int = 0
    dispatch_after_restart_p50_ms: float = 0.0
    dispatch_after_restart_p99_ms: float = 0.0
    dispatch_after_restart_errors: int = 0
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- server


class ServerUnderLoad:
    """``comet-server serve`` on a private PostgreSQL cluster in a temp dir (its own,
    so the bench can register devices straight into the database)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "server"
        self.postgres = EmbeddedPostgres(root / "pg")
        self.database_url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.target = ""
        self.extra_args: list[str] = []  # e.g. a shared --secret-key-file

    def start(self) -> None:
        self.data_dir.mkdir(parents=True)
        self.database_url = self.postgres.start()
        subprocess.run(
            [str(BIN / "comet-server"), "add-admin", "admin", "--password-stdin", *self._db()],
            input=ADMIN_PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        self.serve()

    def _db(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--database-url", self.database_url]

    def serve(self) -> None:
        """Start ``comet-server serve`` (again on the same port, once it has one)."""
        listen = self.target or "127.0.0.1:0"
        log = (self.root / "server.log").open("a")
        self.proc = subprocess.Popen(
            [str(BIN / "comet-server"), "serve", *self._db(),
             "--listen", listen, "--heartbeat-seconds", "15", *self.extra_args],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on http://"):
            self.proc.kill()
            raise SystemExit(f"server did not start: {line!r}; see {self.root}/server.log")
        self.target = line.removeprefix("listening on http://").strip().rstrip("/")

    def rss_kb(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop_serving(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        self.stop_serving()
        if self.database_url:
            self.postgres.stop()


# ---------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Device:
    device_id: str
    metadata: Metadata


async def admin_session(auth: control_pb2_grpc.AuthServiceAsyncStub) -> Metadata:
    pre = await auth.PreLogin(control_pb2.PreLoginRequest(username="admin"), timeout=30)
    kdf = KdfParams(pre.kdf.algorithm, pre.kdf.salt, pre.kdf.log2_n, pre.kdf.r, pre.kdf.p)
    key = await asyncio.to_thread(derive_login_secrets, ADMIN_PASSWORD, kdf)
    reply = await auth.Login(
        control_pb2.LoginRequest(username="admin", auth_key=key.auth_key, admin_session=True),
        timeout=30,
    )
    return (("authorization", f"Bearer {reply.session_token}"),)


async def register_devices(
    admin: admin_pb2_grpc.AdminServiceAsyncStub,
    admin_md: Metadata,
    database_url: str,
    count: int,
) -> list[Device]:
    """One user with ``count`` devices."""
    kdf = KdfParams.new()  # the server refuses anything below the floor; one derive
    auth_key = derive_login_secrets(USER_PASSWORD, kdf).auth_key
    await admin.AddUser(
        admin_pb2.AddUserRequest(
            username="load",
            kdf=control_pb2.KdfParams(
                algorithm=kdf.algorithm, salt=kdf.salt, log2_n=kdf.log2_n, r=kdf.r, p=kdf.p
            ),
            auth_key=auth_key,
        ),
        metadata=admin_md,
        timeout=30,
    )
    # Logins are slow on purpose (the server hashes the login secret with scrypt),
    # so the devices are registered the way a Login would, straight in the store.
    devices = await asyncio.to_thread(insert_devices, database_url, count)
    return devices


def insert_devices(database_url: str, count: int) -> list[Device]:
    now = datetime.now(UTC)
    tokens = [new_token() for _ in range(count)]
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with psycopg.connect(database_url) as conn:
        user_id = conn.execute("SELECT id FROM users WHERE username = 'load'").fetchone()
        assert user_id is not None
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,"
                " registered_at, token_hash) VALUES (%s, %s, %s, 'linux', '', 'UTC', 'load',"
                " %s, %s)",
                [
                    (ids[i], user_id[0], f"sim-{i}", now, token_hash(tokens[i]))
                    for i in range(count)
                ],
            )
    return [Device(ids[i], (("authorization", f"Bearer {tokens[i]}"),)) for i in range(count)]


async def bounded(limit: int, work: list[Callable[[], Awaitable[None]]]) -> None:
    """Run the work items, at most ``limit`` at a time."""
    pending = iter(work)

    async def worker() -> None:
        for item in pending:
            await item()

    await asyncio.gather(*(worker() for _ in range(limit)))


class SimulatedAgent:
    """One live stream that answers every command at once, like an idle agent; when
    the stream breaks it redials with the agent's back-off, like ``LiveConnection``."""

    def __init__(
        self, device: Device, stub: control_pb2_grpc.AgentServiceAsyncStub, backoff: Backoff
    ) -> None:
        self.device = device
        self._stub = stub
        self._backoff = backoff
        self._out: asyncio.Queue[control_pb2.AgentMessage | None] = asyncio.Queue()
        self.accepted = asyncio.Event()
        self.accepted_at = 0.0  # monotonic time of the latest acceptance
        self.failed = ""
        self.commands = 0
        self.command_at = 0.0  # monotonic time the latest command arrived
        self.attempts: list[float] = []  # monotonic times of Connect calls

    async def run_forever(self) -> None:
        failures = 0
        while True:
            self._out = asyncio.Queue()
            self.attempts.append(time.monotonic())
            before = self.accepted_at
            await self.run()
            failures = 1 if self.accepted_at != before else failures + 1
            await asyncio.sleep(self._backoff.delay(failures))

    async def _outgoing(
        self, out: asyncio.Queue[control_pb2.AgentMessage | None]
    ) -> AsyncIterator[control_pb2.AgentMessage]:
        yield control_pb2.AgentMessage(
            hello=control_pb2.AgentHello(device_id=self.device.device_id, client_version="load")
        )
        while True:
            try:
                message = await asyncio.wait_for(out.get(), 15)
            except TimeoutError:
                message = control_pb2.AgentMessage(heartbeat=control_pb2.Heartbeat())
            if message is None:
                return
            yield message

    async def run(self) -> None:
        out = self._out
        call = self._stub.Connect(self._outgoing(out), metadata=self.device.metadata)
        try:
            async for message in call:
                body = message.WhichOneof("body")
                if body == "accepted":
                    self.failed = ""  # held again
                    self.accepted_at = time.monotonic()
                    self.accepted.set()
                elif body == "command":
                    self.command_at = time.monotonic()
                    self.commands += 1
                    reply = control_pb2.CommandReply(
                        request_id=message.command.request_id, done=control_pb2.Empty()
                    )
                    self._out.put_nowait(control_pb2.AgentMessage(reply=reply))
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.failed = f"{e.code().name}: {e.details()}"
        finally:
            out.put_nowait(None)
            call.cancel()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure_dispatch(
    admin: admin_pb2_grpc.AdminServiceAsyncStub,
    admin_md: Metadata,
    devices: list[Device],
    options: LoadOptions,
    figures: Figures,
) -> None:
    errors, latencies = await dispatch_round_trips(admin, admin_md, devices, options)
    figures.dispatch_errors = errors
    figures.dispatches = len(latencies)
    figures.dispatch_p50_ms = round(statistics.median(latencies), 1) if latencies else 0.0
    figures.dispatch_p99_ms = round(percentile(latencies, 0.99), 1)


async def dispatch_round_trips(
    admin: admin_pb2_grpc.AdminServiceAsyncStub,
    admin_md: Metadata,
    devices: list[Device],
    options: LoadOptions,
    agents: dict[str, SimulatedAgent] | None = None,
    received: list[float] | None = None,
) -> tuple[int, list[float]]:
    """(errors, latencies in ms) of ``options.dispatches`` remote-command round trips;
    given the agents by device id, also the time from the dispatch to the agent
    receiving the command, appended to ``received`` (ms)."""
    latencies: list[float] = []
    errors = 0

    async def one(i: int) -> None:
        device = devices[(i * 7919) % len(devices)]
        started = time.perf_counter()
        sent_at = time.monotonic()
        try:
            await admin.Dispatch(
                admin_pb2.DispatchRequest(
                    device_id=device.device_id,
                    command=control_pb2.Command(refetch_profile=control_pb2.Empty()),
                    timeout_seconds=10,
                ),
                metadata=admin_md,
                timeout=15,
            )
        except grpc.aio.AioRpcError:
            nonlocal errors
            errors += 1
            return
        latencies.append((time.perf_counter() - started) * 1000)
        agent = agents.get(device.device_id) if agents else None
        if agent is not None and received is not None and agent.command_at >= sent_at:
            received.append((agent.command_at - sent_at) * 1000)

    await bounded(
        options.dispatch_concurrency, [functools.partial(one, i) for i in range(options.dispatches)]
    )
    return errors, latencies


def backup_job(device: Device, started: Timestamp, counter: int) -> common_pb2.Job:
    return common_pb2.Job(
        job_id=f"load-{device.device_id}",
        classification=common_pb2.JOB_CLASSIFICATION_BACKUP,
        status=common_pb2.JOB_STATUS_RUNNING,
        started_at=started,
        progress=common_pb2.JobProgress(
            counter=counter, bytes_done=counter * 1_000_000, bytes_total=10**12, items_done=counter
        ),
    )


async def start_jobs(
    agent_stub: control_pb2_grpc.AgentServiceAsyncStub,
    devices: list[Device],
    started: Timestamp,
    options: LoadOptions,
    figures: Figures,
) -> None:
    """Every agent starts a backup: the job's first report, which the server writes
    through (job creation is durable before the ack), so it is timed on its own."""
    errors = 0

    async def one(device: Device) -> None:
        nonlocal errors
        try:
            await agent_stub.ReportJob(
                control_pb2.JobReport(job=backup_job(device, started, 0)),
                metadata=device.metadata,
                timeout=60,
            )
        except grpc.aio.AioRpcError:
            errors += 1

    began = time.monotonic()
    await bounded(
        options.report_concurrency, [functools.partial(one, device) for device in devices]
    )
    elapsed = time.monotonic() - began
    figures.job_starts, figures.job_start_errors = len(devices) - errors, errors
    figures.job_starts_per_second = round(figures.job_starts / elapsed, 1)


async def measure_reports(
    agent_stub: control_pb2_grpc.AgentServiceAsyncStub,
    devices: list[Device],
    options: LoadOptions,
    figures: Figures,
    starting: list[Device] | None = None,
) -> None:
    """Progress reports of running backups, as agents send them while working (each
    agent's job is started first, see ``start_jobs``; only ``starting``'s if given)."""
    started = Timestamp()
    started.GetCurrentTime()
    await start_jobs(
        agent_stub, devices if starting is None else starting, started, options, figures
    )
    deadline = time.monotonic() + options.report_seconds
    sent = 0
    errors = 0

    async def worker(w: int) -> None:
        nonlocal sent, errors
        n = 0
        while time.monotonic() < deadline:
            device = devices[(w + n * options.report_concurrency) % len(devices)]
            n += 1
            job = backup_job(device, started, n)
            try:
                await agent_stub.ReportJob(
                    control_pb2.JobReport(job=job), metadata=device.metadata, timeout=30
                )
                sent += 1
            except grpc.aio.AioRpcError:
                errors += 1

    began = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(options.report_concurrency)))
    elapsed = time.monotonic() - began
    figures.reports, figures.report_errors = sent, errors
    figures.reports_per_second = round(sent / elapsed, 1)


async def run_load(server: ServerUnderLoad, options: LoadOptions) -> Figures:
    figures = Figures(agents_wanted=options.agents)
    channel_count = max(1, -(-options.agents // options.streams_per_channel))
    # Real agents dial a new channel per attempt (no channel-level back-off); these
    # shared channels redial within the agents' own back-off window instead.
    channel_options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.initial_reconnect_backoff_ms", int(AgentConfig.reconnect_min_seconds * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(AgentConfig.reconnect_min_seconds * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(AgentConfig.reconnect_max_seconds * 1000)),
    ]
    channels = [
        grpc.aio.insecure_channel(server.target, options=channel_options)
        for _ in range(channel_count)
    ]
    control = grpc.aio.insecure_channel(server.target)
    try:
        auth = control_pb2_grpc.AuthServiceStub(control)
        admin = admin_pb2_grpc.AdminServiceStub(control)
        admin_md = await admin_session(auth)

        began = time.monotonic()
        devices = await register_devices(admin, admin_md, server.database_url, options.agents)
        figures.register_seconds = round(time.monotonic() - began, 1)
        await asyncio.sleep(2)
        figures.rss_before_kb = server.rss_kb()

        backoff = Backoff(
            first=AgentConfig.reconnect_min_seconds, cap=AgentConfig.reconnect_max_seconds
        )
        agents = [
            SimulatedAgent(
                d, control_pb2_grpc.AgentServiceStub(channels[i % channel_count]), backoff
            )
            for i, d in enumerate(devices)
        ]
        began = time.monotonic()
        tasks = [asyncio.create_task(a.run_forever()) for a in agents]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(a.accepted.wait() for a in agents)), timeout=120
            )
        figures.connect_seconds = round(time.monotonic() - began, 1)
        await asyncio.sleep(5)  # let buffers settle; the streams are idle now
        figures.agents_held = sum(a.accepted.is_set() and not a.failed for a in agents)
        figures.rss_connected_kb = server.rss_kb()
        if figures.agents_held:
            figures.rss_per_connection_kb = round(
                (figures.rss_connected_kb - figures.rss_before_kb) / figures.agents_held, 1
            )
        failures = {a.failed for a in agents if a.failed}
        if failures:
            figures.notes.append(f"stream failures: {sorted(failures)[:3]}")

        print("phase: dispatch", flush=True)
        await measure_dispatch(admin, admin_md, devices, options, figures)
        print("phase: reports", flush=True)
        await measure_reports(control_pb2_grpc.AgentServiceStub(control), devices, options, figures)
        if options.restart:
            print("phase: restart", flush=True)
            control = await measure_restart(server, agents, devices, control, options, figures)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for channel in [*channels, control]:
            await channel.close()
    return figures


async def measure_restart(
    server: ServerUnderLoad,
    agents: list[SimulatedAgent],
    devices: list[Device],
    control: grpc.aio.Channel,
    options: LoadOptions,
    figures: Figures,
) -> grpc.aio.Channel:
    """Restart the server under the fleet; returns the new control channel."""
    down_at = time.monotonic()
    await asyncio.to_thread(server.stop_serving)
    await control.close()
    await asyncio.to_thread(server.serve)
    up_at = time.monotonic()
    figures.restart_down_seconds = round(up_at - down_at, 1)

    def back() -> list[SimulatedAgent]:
        return [a for a in agents if a.accepted_at > up_at]

    deadline = up_at + 60
    while len(back()) < len(agents) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    returned = back()
    figures.reconnected_after_restart = len(returned)
    if returned:
        delays = [a.accepted_at - up_at for a in returned]
        figures.reconnect_all_seconds = round(max(delays), 2)
        figures.reconnect_p50_seconds = round(statistics.median(delays), 2)
    attempts = [t for a in agents for t in a.attempts if t >= down_at]
    figures.connect_attempts_after_restart = len(attempts)
    per_second: dict[int, int] = {}
    for t in attempts:
        per_second[int(t - down_at)] = per_second.get(int(t - down_at), 0) + 1
    figures.connects_per_second_peak = max(per_second.values(), default=0)

    control = grpc.aio.insecure_channel(server.target)
    auth = control_pb2_grpc.AuthServiceStub(control)
    admin = admin_pb2_grpc.AdminServiceStub(control)
    admin_md = await admin_session(auth)
    errors, latencies = await dispatch_round_trips(admin, admin_md, devices, options)
    figures.dispatch_after_restart_errors = errors
    if latencies:
        figures.dispatch_after_restart_p50_ms = round(statistics.median(latencies), 1)
        figures.dispatch_after_restart_p99_ms = round(percentile(latencies, 0.99), 1)
    return control


def verdict(figures: Figures) -> dict[str, str]:
    restart = {}
    if figures.connect_attempts_after_restart:
        restart = {
            "reconnect_all_seconds": "met"
            if figures.reconnected_after_restart == figures.agents_wanted
            and figures.reconnect_all_seconds <= TARGETS["reconnect_all_seconds"]
            else "missed",
            "dispatch_after_restart_p99_ms": "met"
            if figures.dispatch_after_restart_p99_ms
            and figures.dispatch_after_restart_p99_ms <= TARGETS["dispatch_after_restart_p99_ms"]
            else "missed",
        }
    return {
        **restart,
        "agents_held": "met" if figures.agents_held >= TARGETS["agents_held"] else "missed",
        "reports_per_second": "met"
        if figures.reports_per_second >= TARGETS["reports_per_second"]
        else "missed",
        "dispatch_p99_ms": "met"
        if figures.dispatches and figures.dispatch_p99_ms <= TARGETS["dispatch_p99_ms"]
        else "missed",
        "rss_per_connection_kb": "met"
        if figures.rss_per_connection_kb <= TARGETS["rss_per_connection_kb"]
        else "missed",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/load/run", description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=LoadOptions.agents)
    parser.add_argument("--dispatches", type=int, default=LoadOptions.dispatches)
    parser.add_argument("--report-seconds", type=float, default=LoadOptions.report_seconds)
    parser.add_argument("--report-concurrency", type=int, default=LoadOptions.report_concurrency)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument(
        "--restart", action="store_true", help="also restart the server under the fleet"
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="more than one: instances behind nginx (TLS)"
    )
    parser.add_argument(
        "--ramp", help="with --instances: agent counts to step through, e.g. 1000,3000,6000"
    )
    args = parser.parse_args(argv)
    options = LoadOptions(
        agents=args.agents,
        dispatches=args.dispatches,
        report_seconds=args.report_seconds,
        report_concurrency=args.report_concurrency,
        keep_dir=args.keep,
        restart=args.restart,
    )
    root = Path(tempfile.mkdtemp(prefix="comet-load-", dir="/tmp"))
    os.chmod(root, 0o755)  # the embedded PostgreSQL runs as another OS user when root
    if args.instances > 1:
        return run_fleet(root, args, options)
    server = ServerUnderLoad(root)
    try:
        server.start()
        print(f"server pid {server.pid} on {server.target}; {options.agents} agents", flush=True)
        figures = asyncio.run(run_load(server, options))
    finally:
        server.stop()
        if not options.keep_dir:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    result: dict[str, Any] = {
        "figures": asdict(figures),
        "targets": TARGETS,
        "verdict": verdict(figures),
        "run_id": uuid.uuid4().hex[:8],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def run_fleet(root: Path, args: argparse.Namespace, options: LoadOptions) -> int:
    from bench.load import fleet

    ramp = fleet.parse_ramp(args.ramp or str(options.agents))
    try:
        steps = fleet.run(root, args.instances, ramp, options)
    finally:
        if not options.keep_dir:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    result = {"instances": args.instances, "steps": [asdict(s) for s in steps]}
    print(json.dumps(result, indent=2))
    print(fleet.table(steps))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
