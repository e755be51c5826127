"""Load on several Comet Server instances behind nginx (TLS), sharing one PostgreSQL,
ramped in steps (e.g. 1,000 → 3,000 → 6,000 simulated agents).

The instances start as a provider runs them (plaintext on loopback, one shared
``--secret-key-file``, ``--trusted-proxy`` for nginx) and nginx uses
deploy/nginx/comet.conf with its upstreams and certificate filled in, as the
scale-out test does. The simulated agents are ``load.SimulatedAgent``: one asyncio
process, each agent one live stream, streams multiplexed over TLS channels to nginx
(nginx still opens one upstream connection per stream, so each instance holds one
connection per agent that landed on it, as with real agents).

At each step, once every agent of the step is accepted and the streams idle:

* connections held per instance (ESTABLISHED sockets on its port), RSS per
  instance, PostgreSQL client connections;
* CPU per component (instances, nginx, PostgreSQL, this bench process, and the
  whole machine, which other work shares) while the streams only heartbeat, and
  again while dispatching and while reporting (giving server CPU per report and per
  1,000 idle agents, the figures that carry over to cores not shared with other work);
* remote commands (AdminService.Dispatch through nginx to whichever instance,
  routed to the one holding the agent's stream): dispatch → agent receives, and the
  whole round trip, p50 / p99;
* job progress reports per second through nginx, split per instance from nginx's
  access log (which names the upstream of every call).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg

from bench.load.load import (
    ADMIN_PASSWORD,
    BIN,
    Figures,
    LoadOptions,
    ServerUnderLoad,
    SimulatedAgent,
    admin_session,
    dispatch_round_trips,
    measure_reports,
    percentile,
    register_devices,
)
from comet.agent.backoff import Backoff
from comet.agent.config import AgentConfig
from comet.server.embedded_postgres import EmbeddedPostgres, free_port
from comet.v1 import admin_pb2_grpc, control_pb2_grpc
from tests.fixtures.nginx import render_site

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    agents: int = 0
    connect_seconds: float = 0.0
    agents_held: int = 0
    connections_per_instance: list[int] = field(default_factory=list)
    rss_per_instance_mb: list[float] = field(default_factory=list)
    rss_per_connection_kb: float = 0.0
    nginx_rss_mb: float = 0.0
    bench_rss_mb: float = 0.0
    postgres_connections: int = 0
    idle_cpu_percent: dict[str, float] = field(default_factory=dict)
    dispatches: int = 0
    dispatch_errors: int = 0
    receive_p50_ms: float = 0.0
    receive_p99_ms: float = 0.0
    round_trip_p50_ms: float = 0.0
    round_trip_p99_ms: float = 0.0
    job_starts_per_second: float = 0.0
    reports_per_second: float = 0.0
    report_errors: int = 0
    reports_per_second_per_instance: list[float] = field(default_factory=list)
    dispatch_cpu_percent: dict[str, float] = field(default_factory=dict)
    report_cpu_percent: dict[str, float] = field(default_factory=dict)
    # Server side (instances + nginx + PostgreSQL) CPU per job report (starts and
    # progress), and per 1,000 idle agents: what carries over to dedicated cores.
    server_cpu_ms_per_report: float = 0.0
    idle_server_cpu_percent_per_1000: float = 0.0
    load_average: str = ""


# ---------------------------------------------------------------------------- processes


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # utime + stime, plus the children it reaped (PostgreSQL backends that ended).
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def proc_rss_kb(pid: int) -> int:
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    out.append(int(entry.name))
    return out


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def established(port: int) -> int:
    """ESTABLISHED TCP connections whose local port is ``port``."""
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def port_of(server: ServerUnderLoad) -> int:
    return int(server.target.rpartition(":")[2])


class Nginx:
    """A private nginx with deploy/nginx/comet.conf in front of the instances."""

    def __init__(self, root: Path, upstreams: list[int]) -> None:
        self.root = root
        self.port = free_port()
        root.mkdir()
        subprocess.run(
            [str(BIN / "comet-server"), "make-certificate", "--dir", str(root / "tls")],
            check=True, capture_output=True,
        )  # fmt: skip
        self.ca = (root / "tls" / "server.crt").read_bytes()
        temps = []
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / name).mkdir(mode=0o777)
            (root / name).chmod(0o777)  # workers run as an unprivileged user
            temps.append(f"    {name}_temp_path {root / name};\n")
        (root / "comet.conf").write_text(render_site(upstreams, self.port, root / "tls"))
        # One worker (two cores here); a file limit for two sockets per agent.
        (root / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\nworker_rlimit_nofile 19000;\n"
            f"pid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n"
            "events { worker_connections 18000; }\nhttp {\n"
            "    log_format upstream '$request_uri $status $upstream_addr';\n"
            f"    access_log {root}/access.log upstream;\n"
            "    keepalive_requests 1000000;\n"
            f"{''.join(temps)}    include {root}/comet.conf;\n}}\n"
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "err.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not (root / "nginx.pid").exists() or not children(self.proc.pid):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nginx did not start; see {root}/error.log")
            time.sleep(0.1)
        self.target = f"127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def log_size(self) -> int:
        log = self.root / "access.log"
        return log.stat().st_size if log.exists() else 0

    def calls_since(self, offset: int, method: str) -> dict[int, int]:
        """Calls of ``method`` logged after ``offset``, by the instance port that
        answered."""
        counts: dict[int, int] = {}
        with (self.root / "access.log").open("rb") as log:
            log.seek(offset)
            for line in log.read().decode().splitlines():
                path, _status, upstreams = line.split(" ", 2)
                if path.endswith("/" + method):
                    port = int(upstreams.split(", ")[-1].rpartition(":")[2] or 0)
                    counts[port] = counts.get(port, 0) + 1
        return counts

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Fleet:
    """``instances`` comet-servers on one embedded PostgreSQL, behind nginx."""

    def __init__(self, root: Path, instances: int) -> None:
        self.root = root
        self.postgres = EmbeddedPostgres(root / "pg")
        self.database_url = ""
        self.servers = [ServerUnderLoad(root / f"s{n}") for n in range(1, instances + 1)]
        self.nginx: Nginx | None = None

    def start(self) -> None:
        self.database_url = self.postgres.start()
        first = self.servers[0]
        for server in self.servers:
            server.root.mkdir()
            server.data_dir.mkdir()
            server.database_url = self.database_url
            server.extra_args = ["--trusted-proxy", "127.0.0.1/32"]
        subprocess.run(
            [str(BIN / "comet-server"), "add-admin", "admin", "--password-stdin", *first._db()],
            input=ADMIN_PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        first.serve()  # creates the secret key the others share
        for server in self.servers[1:]:
            server.extra_args += ["--secret-key-file", str(first.data_dir / "secret.key")]
            server.serve()
        self.nginx = Nginx(self.root / "nginx", [port_of(s) for s in self.servers])

    def postmaster_pid(self) -> int:
        return int((self.postgres.pgdata / "postmaster.pid").read_text().split()[0])

    def components(self) -> dict[str, list[int]]:
        assert self.nginx is not None
        postmaster = self.postmaster_pid()
        parts = {f"instance {n}": [s.pid] for n, s in enumerate(self.servers, 1)}
        parts["nginx"] = self.nginx.pids()
        parts["postgresql"] = [postmaster, *children(postmaster)]
        parts["bench agents"] = [os.getpid()]
        return parts

    def postgres_connections(self) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()"
            ).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for server in self.servers:
            server.stop_serving()
        if self.database_url:
            self.postgres.stop()


@dataclass
class CpuMeter:
    """CPU used by each component (percent of one core) over an interval."""

    fleet: Fleet
    began: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    machine: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self.began = time.monotonic()
        self.cpu = self._sample()
        self.machine = machine_busy_seconds()

    def _sample(self) -> dict[str, float]:
        return {
            name: sum(proc_cpu_seconds(pid) for pid in pids)
            for name, pids in self.fleet.components().items()
        }

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.began
        now = self._sample()
        busy, total = machine_busy_seconds()
        out = {
            name: round(100 * (now[name] - self.cpu.get(name, now[name])) / elapsed, 1)
            for name in now
        }
        cores = os.cpu_count() or 1
        out["machine (all work)"] = round(
            100 * cores * (busy - self.machine[0]) / max(total - self.machine[1], 1e-9), 1
        )
        return out


# ---------------------------------------------------------------------------- ramp


def parse_ramp(text: str) -> list[int]:
    steps = [int(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    if not steps or steps != sorted(steps) or steps[0] <= 0:
        raise SystemExit("--ramp takes increasing agent counts, e.g. 1000,3000,6000")
    return steps


async def run_fleet(fleet: Fleet, options: LoadOptions, ramp: list[int]) -> list[Step]:
    assert fleet.nginx is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=fleet.nginx.ca)
    channel_options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.initial_reconnect_backoff_ms", int(AgentConfig.reconnect_min_seconds * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(AgentConfig.reconnect_min_seconds * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(AgentConfig.reconnect_max_seconds * 1000)),
    ]
    target = fleet.nginx.target
    control = grpc.aio.secure_channel(target, credentials)
    reporting = grpc.aio.secure_channel(target, credentials)
    channels: list[grpc.aio.Channel] = []
    tasks: list[asyncio.Task[None]] = []
    steps: list[Step] = []
    try:
        admin = admin_pb2_grpc.AdminServiceStub(control)
        admin_md = await admin_session(control_pb2_grpc.AuthServiceStub(control))
        devices = await register_devices(admin, admin_md, fleet.database_url, ramp[-1])
        await asyncio.sleep(2)
        rss_idle = [s.rss_kb() for s in fleet.servers]
        backoff = Backoff(
            first=AgentConfig.reconnect_min_seconds, cap=AgentConfig.reconnect_max_seconds
        )
        agents: list[SimulatedAgent] = []
        by_device: dict[str, SimulatedAgent] = {}
        report_stub = control_pb2_grpc.AgentServiceStub(reporting)
        for count in ramp:
            step = Step(agents=count)
            print(f"step: {count} agents", flush=True)
            new = devices[len(agents) : count]
            for device in new:
                if len(agents) % options.streams_per_channel == 0:
                    channels.append(
                        grpc.aio.secure_channel(target, credentials, options=channel_options)
                    )
                agent = SimulatedAgent(
                    device, control_pb2_grpc.AgentServiceStub(channels[-1]), backoff
                )
                agents.append(agent)
                by_device[device.device_id] = agent
            began = time.monotonic()
            tasks += [asyncio.create_task(a.run_forever()) for a in agents[-len(new) :]]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(a.accepted.wait() for a in agents)), timeout=300
                )
            step.connect_seconds = round(time.monotonic() - began, 1)
            await asyncio.sleep(5)
            step.agents_held = sum(a.accepted.is_set() and not a.failed for a in agents)
            await held_figures(fleet, step, rss_idle)
            meter = CpuMeter(fleet)
            meter.start()
            await asyncio.sleep(10)  # only heartbeats flow
            step.idle_cpu_percent = meter.stop()

            step.idle_server_cpu_percent_per_1000 = round(
                server_side(step.idle_cpu_percent) * 1000 / max(step.agents_held, 1), 1
            )
            meter.start()
            received: list[float] = []
            errors, latencies = await dispatch_round_trips(
                admin, admin_md, devices[:count], options, by_device, received
            )
            step.dispatches, step.dispatch_errors = len(latencies), errors
            if latencies:
                step.round_trip_p50_ms = round(statistics.median(latencies), 1)
                step.round_trip_p99_ms = round(percentile(latencies, 0.99), 1)
            if received:
                step.receive_p50_ms = round(statistics.median(received), 1)
                step.receive_p99_ms = round(percentile(received, 0.99), 1)
            step.dispatch_cpu_percent = meter.stop()
            offset = fleet.nginx.log_size()
            figures = Figures()
            meter.start()
            began = time.monotonic()
            await measure_reports(report_stub, devices[:count], options, figures, new)
            elapsed = time.monotonic() - began
            per_port = fleet.nginx.calls_since(offset, "ReportJob")
            step.report_cpu_percent = meter.stop()
            reports = figures.job_starts + figures.reports
            step.server_cpu_ms_per_report = round(
                server_side(step.report_cpu_percent) * 10 * elapsed / max(reports, 1), 2
            )
            step.job_starts_per_second = figures.job_starts_per_second
            step.reports_per_second, step.report_errors = (
                figures.reports_per_second,
                figures.report_errors,
            )
            # Starts and progress reports over the report phase, split as nginx sent them.
            total = sum(per_port.values()) or 1
            step.reports_per_second_per_instance = [
                round(figures.reports_per_second * per_port.get(port_of(s), 0) / total, 1)
                for s in fleet.servers
            ]
            step.load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            steps.append(step)
            print(step, flush=True)
        failures = {a.failed for a in agents if a.failed}
        if failures:
            print(f"stream failures: {sorted(failures)[:3]}", flush=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in [*channels, control, reporting]:
            await channel.close()
    return steps


def server_side(cpu_percent: dict[str, float]) -> float:
    """CPU percent of the server tier: instances, nginx and PostgreSQL."""
    return (
        sum(v for k, v in cpu_percent.items() if k.startswith("instance "))
        + cpu_percent.get("nginx", 0.0)
        + cpu_percent.get("postgresql", 0.0)
    )


async def held_figures(fleet: Fleet, step: Step, rss_idle: list[int]) -> None:
    assert fleet.nginx is not None
    step.connections_per_instance = [established(port_of(s)) for s in fleet.servers]
    rss = [s.rss_kb() for s in fleet.servers]
    step.rss_per_instance_mb = [round(kb / 1024, 1) for kb in rss]
    held = sum(step.connections_per_instance) or 1
    step.rss_per_connection_kb = round((sum(rss) - sum(rss_idle)) / held, 1)
    step.nginx_rss_mb = round(sum(proc_rss_kb(p) for p in fleet.nginx.pids()) / 1024, 1)
    step.bench_rss_mb = round(proc_rss_kb(os.getpid()) / 1024, 1)
    step.postgres_connections = await asyncio.to_thread(fleet.postgres_connections)


def table(steps: list[Step]) -> str:
    """The figures as a Markdown table, one column per step."""
    rows: list[tuple[str, list[str]]] = [
        ("agents held", [f"{s.agents_held:,} / {s.agents:,}" for s in steps]),
        ("connected in", [f"{s.connect_seconds} s" for s in steps]),
        (
            "connections per instance",
            [" / ".join(map(str, s.connections_per_instance)) for s in steps],
        ),
        ("RSS per instance (MB)", [" / ".join(map(str, s.rss_per_instance_mb)) for s in steps]),
        ("RSS per connection", [f"{s.rss_per_connection_kb} KB" for s in steps]),
        ("nginx RSS", [f"{s.nginx_rss_mb} MB" for s in steps]),
        ("PostgreSQL connections", [str(s.postgres_connections) for s in steps]),
        (
            "dispatch → agent receives p50 / p99",
            [f"{s.receive_p50_ms} / {s.receive_p99_ms} ms" for s in steps],
        ),
        (
            "dispatch round trip p50 / p99",
            [f"{s.round_trip_p50_ms} / {s.round_trip_p99_ms} ms" for s in steps],
        ),
        (
            "dispatch errors",
            [f"{s.dispatch_errors} of {s.dispatches + s.dispatch_errors}" for s in steps],
        ),
        ("job starts/s (new agents)", [str(s.job_starts_per_second) for s in steps]),
        (
            "job reports/s (all)",
            [f"{s.reports_per_second} ({s.report_errors} errors)" for s in steps],
        ),
        (
            "job reports/s per instance",
            [" / ".join(map(str, s.reports_per_second_per_instance)) for s in steps],
        ),
    ]
    rows += [
        ("server CPU ms per job report", [str(s.server_cpu_ms_per_report) for s in steps]),
        (
            "server CPU % per 1,000 idle agents",
            [str(s.idle_server_cpu_percent_per_1000) for s in steps],
        ),
    ]
    phases = (
        ("idle", "idle_cpu_percent"),
        ("dispatching", "dispatch_cpu_percent"),
        ("reporting", "report_cpu_percent"),
    )
    for phase, attr in phases:
        names = list(getattr(steps[0], attr))
        for name in names:
            rows.append(
                (f"CPU % {phase}: {name}", [str(getattr(s, attr).get(name, "")) for s in steps])
            )
    rows.append(("load average at the end", [s.load_average for s in steps]))
    lines = ["| | " + " | ".join(f"{s.agents:,} agents" for s in steps) + " |"]
    lines.append("| --- |" + " --- |" * len(steps))
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in rows]
    return "\n".join(lines)


def run(root: Path, instances: int, ramp: list[int], options: LoadOptions) -> list[Step]:
    fleet = Fleet(root, instances)
    try:
        fleet.start()
        assert fleet.nginx is not None
        ports = ", ".join(f"{s.target} (pid {s.pid})" for s in fleet.servers)
        print(f"nginx on {fleet.nginx.target} → {ports}; ramp {ramp}", flush=True)
        return asyncio.run(run_fleet(fleet, options, ramp))
    finally:
        fleet.stop()
