"""Assembles and runs one server instance: database, stores, gRPC services."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import resource
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.buckets.files import BucketFiles
from comet.server.buckets.objects import BucketObjects
from comet.server.buckets.s3 import BucketS3, S3BucketConfig, parse_store_url
from comet.server.buckets.store import BucketPolicy, BucketStore
from comet.server.clock import Clock, SystemClock
from comet.server.config import ServerConfig
from comet.server.database_supervisor import ConnectionProbe, DatabaseSupervisor
from comet.server.embedded_postgres import EmbeddedPostgres
from comet.server.errors import DatabaseSetupError, ListenError
from comet.server.listen import check_port_free
from comet.server.maintenance import Maintenance, MaintenancePolicy
from comet.server.metrics import MetricsInterceptor, MetricsRefresher, ServerMetrics
from comet.server.notify.stack import Notifications, open_notifications
from comet.server.routing import (
    COMMANDS_CHANNEL,
    REPLIES_CHANNEL,
    CommandQueue,
    NotificationListener,
    listener_name,
)
from comet.server.rpc.admin_service import AdminService
from comet.server.rpc.agent_service import AgentService
from comet.server.rpc.auth_context import Authenticator, guard
from comet.server.rpc.auth_service import AuthService
from comet.server.rpc.client_address import ClientAddresses, parse_networks
from comet.server.rpc.errors import DatabaseWatcher, ErrorInterceptor
from comet.server.rpc.live import LiveRegistry
from comet.server.rpc.message_limits import MessageLimitInterceptor
from comet.server.rpc.notify_service import NotificationService
from comet.server.rpc.reflection import enable_reflection
from comet.server.rpc.routing import CommandRouter
from comet.server.rpc.storage_service import StorageService
from comet.server.secret_box import SecretBox, load_or_create_key
from comet.server.store.accounts import AccountStore, LoginPolicy
from comet.server.store.api_keys import ApiKeyStore
from comet.server.store.availability import log_background_failure
from comet.server.store.credential_cache import ALL_REVOKED, REVOCATIONS_CHANNEL
from comet.server.store.database import create_engine, migrate
from comet.server.store.directory import Directory
from comet.server.store.jobs import JobStore
from comet.server.store.missed_runs import MissedRunFinder, MissedRunPolicy
from comet.server.store.overview import OverviewStore
from comet.server.store.policies import PolicyStore
from comet.server.store.profiles import ProfileStore
from comet.server.tls import certificate_names, ensure_self_signed
from comet.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
    notify_pb2,
    notify_pb2_grpc,
    storage_pb2,
    storage_pb2_grpc,
)

log = logging.getLogger(__name__)

# Live connections idle for long stretches; keepalives let both ends notice a dead
# peer, and 16 MiB messages leave room for large listings.
#
# Calls that reached the server but that the event loop has not picked up yet wait
# in a pending queue. gRPC's default bounds it at 1,000 (past that, calls are
# dropped at random, and from 3,000 all are); the clients see CANCELLED, or
# "INTERNAL: Internal error from Core" when a write of theirs was in flight. When a
# few thousand agents (re)connect at once, e.g. after a server restart, their
# Connect calls all land in that queue within a second, so it is sized for a
# connect storm, not for steady load. Streams per HTTP/2 connection are not capped
# (agents hold one each; a proxy in front may multiplex many).
MAX_PENDING_CALLS = 20_000
GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", 2 * MAX_PENDING_CALLS),
    # Without this a second server binds the same port and takes half the connections.
    ("grpc.so_reuseport", 0),
]
# Held-back progress reports are written this often (JobStore.flush_progress).
PROGRESS_FLUSH_SECONDS = 1.0
# Audit events past their retention are deleted at start and this often.
AUDIT_PRUNE_SECONDS = 3600


@dataclass
class Database:
    url: str
    embedded: EmbeddedPostgres | None


@contextlib.asynccontextmanager
async def open_database(config: ServerConfig) -> AsyncIterator[Database]:
    """The configured database, or the embedded one started (and later stopped) here."""
    if config.database_url:
        yield Database(config.database_url, None)
        return
    embedded = EmbeddedPostgres(config.data_dir)
    url = await asyncio.to_thread(embedded.start)
    try:
        yield Database(url, embedded)
    finally:
        await asyncio.to_thread(embedded.stop)


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise DatabaseSetupError(
                f"another comet-server is already running with --data-dir {data_dir}"
            ) from e
        yield
    finally:
        os.close(fd)


def _bind(server: grpc.aio.Server, config: ServerConfig) -> str:
    host, _, port_text = config.listen.rpartition(":")
    host = host or "127.0.0.1"
    cert, key = config.tls_cert, config.tls_key
    if config.tls and not (cert and key):
        pair = ensure_self_signed(config.data_dir, certificate_names(host))
        cert, key = pair.cert, pair.key
    try:
        if cert and key:
            credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
            port = server.add_secure_port(f"{host}:{port_text}", credentials)
            scheme = "https"
        else:
            port = server.add_insecure_port(f"{host}:{port_text}")
            scheme = "http"
    except RuntimeError:  # gRPC says only "Failed to bind": the probe says why
        port = 0
    if port == 0:
        check_port_free(config.listen, option="--listen")
        raise ListenError(
            f"cannot listen on {config.listen}; run with GRPC_VERBOSITY=debug for the reason"
        )
    shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    return f"{scheme}://{shown}:{port}/"


def raise_open_files_limit() -> int:
    """Lifts the soft limit on open files to the hard one and returns it: every live
    agent holds a socket, and distributions default the soft limit to 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. an infinite hard limit the kernel caps
            log.warning("could not raise the open files limit from %d", soft)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        log.warning("only %d open files allowed: that caps the live connections", soft)
    return soft


async def serve(config: ServerConfig, *, on_ready: Callable[[str], None]) -> None:
    """Run until SIGTERM/SIGINT, then shut down cleanly."""
    raise_open_files_limit()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # A taken port stops the start now, not after the database has started.
    check_port_free(config.listen, option="--listen")
    if config.metrics_listen:
        check_port_free(config.metrics_listen, option="--metrics-listen")
    with data_dir_lock(config.data_dir):
        async with open_database(config) as database:
            await asyncio.to_thread(migrate, database.url)
            engine = create_engine(database.url)
            try:
                await _run_services(config, engine, database, stop, on_ready)
            finally:
                await engine.dispose()


@dataclass(frozen=True)
class Stores:
    accounts: AccountStore
    profiles: ProfileStore
    policies: PolicyStore
    jobs: JobStore
    maintenance: Maintenance
    buckets: BucketStore
    api_keys: ApiKeyStore
    overview: OverviewStore
    directory: Directory


def bucket_objects(config: ServerConfig) -> BucketObjects:
    """Where bucket objects live: the object store when one is configured, else the
    bucket directory."""
    if not config.bucket_store:
        return BucketFiles(config.bucket_root)
    bucket, prefix = parse_store_url(config.bucket_store)
    keys = config.s3_credentials
    return BucketS3(
        S3BucketConfig(
            config.s3_endpoint,
            bucket,
            prefix,
            keys.access_key if keys else None,
            keys.secret_key if keys else None,
            config.s3_region,
        )
    )


def open_stores(engine: AsyncEngine, clock: Clock, config: ServerConfig, box: SecretBox) -> Stores:
    accounts = AccountStore(
        engine,
        clock,
        LoginPolicy(
            session_hours=config.session_hours,
            max_failed_logins=config.max_failed_logins,
            failed_login_window_seconds=config.failed_login_window_seconds,
            # Three missed heartbeats, and never under 10 s: a device on a busy host
            # must not flicker offline between two heartbeats that arrive late.
            online_after_seconds=max(config.heartbeat_seconds * 3, 10),
            first_backoff_seconds=config.login_backoff_seconds,
        ),
        box=box,
    )
    jobs = JobStore(engine, clock)
    missed = MissedRunFinder(
        engine, clock, jobs, MissedRunPolicy(grace=timedelta(seconds=config.missed_grace_seconds))
    )
    maintenance = Maintenance(
        jobs,
        missed,
        MaintenancePolicy(
            job_timeout=timedelta(seconds=config.job_timeout_seconds),
            log_retention=timedelta(days=config.job_log_retention_days),
            every=timedelta(seconds=config.maintenance_seconds),
        ),
    )
    buckets = BucketStore(
        engine,
        clock,
        bucket_objects(config),
        BucketPolicy(
            quota_bytes=config.bucket_quota_bytes,
            account_quota_bytes=config.account_quota_bytes,
            max_buckets=config.max_buckets,
        ),
        box=box,
    )
    return Stores(
        accounts,
        ProfileStore(engine, clock, box),
        PolicyStore(engine, clock),
        jobs,
        maintenance,
        buckets,
        ApiKeyStore(engine, clock),
        OverviewStore(engine, clock, overdue_after=timedelta(hours=config.overdue_hours)),
        Directory(engine, accounts),
    )


def grpc_server(
    watcher: DatabaseWatcher | None = None,
    *,
    options: list[tuple[str, int]] | None = None,
    metrics: ServerMetrics | None = None,
) -> grpc.aio.Server:
    """A gRPC server whose every failure is mapped by ``rpc.errors`` (one place), and,
    with ``metrics``, every call counted by its final code."""
    # The size check comes first so that a refused request's bytes are dropped
    # before any other wrapper's frame (and traceback) can hold on to them. Metrics
    # wrap the error mapping, so they see the codes it chose.
    interceptors: list[grpc.aio.ServerInterceptor] = [
        MessageLimitInterceptor(),
        ErrorInterceptor(watcher, exempt=(HEALTH_SERVICE, REFLECTION_SERVICE)),
    ]
    if metrics is not None:
        interceptors.insert(1, MetricsInterceptor(metrics))
    return grpc.aio.server(options=options, interceptors=interceptors)


def add_services(
    server: grpc.aio.Server,
    stores: Stores,
    registry: LiveRegistry,
    *,
    instance_id: str,
    heartbeat_seconds: int,
    router: CommandRouter | None = None,
    addresses: ClientAddresses | None = None,
    notifications: Notifications | None = None,
) -> None:
    router = router or CommandRouter(registry, instance_id=instance_id)
    # Every method of every service passes the permission table first (see guard).
    auth = Authenticator(stores.accounts)
    control_pb2_grpc.add_AuthServiceServicer_to_server(
        guard(
            AuthService(stores.accounts, stores.profiles, addresses),
            control_pb2.DESCRIPTOR.services_by_name["AuthService"],
            auth,
        ),
        server,
    )
    control_pb2_grpc.add_AgentServiceServicer_to_server(
        guard(
            AgentService(
                stores.accounts,
                stores.profiles,
                stores.jobs,
                registry,
                instance_id=instance_id,
                heartbeat_seconds=heartbeat_seconds,
                buckets=stores.buckets,
                on_presence=notifications.pump.presence if notifications else None,
            ),
            control_pb2.DESCRIPTOR.services_by_name["AgentService"],
            auth,
        ),
        server,
    )
    storage_pb2_grpc.add_StorageServiceServicer_to_server(
        guard(
            StorageService(stores.buckets),
            storage_pb2.DESCRIPTOR.services_by_name["StorageService"],
            auth,
        ),
        server,
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(
        guard(
            AdminService(
                stores.accounts,
                stores.profiles,
                stores.policies,
                stores.jobs,
                router,
                buckets=stores.buckets,
                api_keys=stores.api_keys,
            ),
            admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
            auth,
        ),
        server,
    )
    if notifications is not None:
        notify_pb2_grpc.add_NotificationServiceServicer_to_server(
            guard(
                NotificationService(stores.accounts, notifications.settings, notifications.outbox),
                notify_pb2.DESCRIPTOR.services_by_name["NotificationService"],
                auth,
            ),
            server,
        )


def notification_listener(
    database_url: str, accounts: AccountStore, router: CommandRouter, *, application_name: str
) -> NotificationListener:
    """The instance's LISTEN connection: routed commands and replies for the router,
    revocations for the credential cache."""

    def on_notify(channel: str, payload: str) -> None:
        if channel == REVOCATIONS_CHANNEL:
            accounts.on_revocation(payload)
        else:
            router.on_notify(channel, payload)

    async def on_connected() -> None:
        # Revocations announced while the listener was away were not heard: forget
        # every remembered credential rather than trust them for another TTL.
        accounts.on_revocation(ALL_REVOKED)
        await router.resync()

    return NotificationListener(
        database_url,
        [COMMANDS_CHANNEL, REPLIES_CHANNEL, REVOCATIONS_CHANNEL],
        on_notify,
        on_connected=on_connected,
        application_name=application_name,
    )


async def _run_services(
    config: ServerConfig,
    engine: AsyncEngine,
    database: Database,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
) -> None:
    database_url = database.url
    instance_id = uuid.uuid4().hex
    box = SecretBox(
        load_or_create_key(config.secret_key_path, create=config.secret_key_file is None)
    )
    stores = open_stores(engine, SystemClock(), config, box)
    await stores.accounts.server_secret("prelogin")
    registry = LiveRegistry()
    clock = SystemClock()
    queue = CommandQueue(engine, clock)
    router = CommandRouter(registry, instance_id=instance_id, queue=queue, clock=clock)
    listener = notification_listener(
        database_url, stores.accounts, router, application_name=listener_name(instance_id)
    )
    listening = asyncio.create_task(listener.run_forever())
    health = HealthServicer()
    probe = ConnectionProbe(database_url)
    supervisor = DatabaseSupervisor(
        probe, embedded=database.embedded, on_change=_health_setter(health)
    )
    metrics = ServerMetrics()
    notifications = open_notifications(engine, clock, config, box, metrics)
    server = grpc_server(supervisor, options=GRPC_OPTIONS, metrics=metrics)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    enable_reflection(server, HEALTH_SERVICE)
    add_services(
        server,
        stores,
        registry,
        instance_id=instance_id,
        heartbeat_seconds=config.heartbeat_seconds,
        router=router,
        addresses=ClientAddresses(parse_networks(config.trusted_proxies)),
        notifications=notifications,
    )
    url = _bind(server, config)
    await _health_setter(health)(True)
    if config.metrics_listen:  # before serving: a busy port stops the start
        port = metrics.serve(config.metrics_listen)
        host = config.metrics_listen.rpartition(":")[0] or "127.0.0.1"
        log.info("metrics at http://%s:%d/metrics", host, port)
        (config.data_dir / "metrics.url").write_text(f"http://{host}:{port}/metrics\n")
    await server.start()
    web = None
    if config.web_listen:
        from comet.server.web.server import start_web

        tls = (config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
        web = await start_web(
            config, stores, router, clock, instance_id=instance_id,
            addresses=ClientAddresses(parse_networks(config.trusted_proxies)), tls=tls,
        )  # fmt: skip
        log.info("web console at %s", web.url)
        (config.data_dir / "web.url").write_text(web.url + "\n")
    (config.data_dir / "server.url").write_text(url + "\n")
    on_ready(url)
    background = [
        asyncio.create_task(_flush_seen(stores.accounts, registry, config.heartbeat_seconds)),
        asyncio.create_task(stores.jobs.run_progress_flusher(PROGRESS_FLUSH_SECONDS)),
        asyncio.create_task(stores.maintenance.run_forever()),
        asyncio.create_task(stores.buckets.purge_trash_forever()),
        asyncio.create_task(_prune_commands(router)),
        asyncio.create_task(supervisor.run_forever()),
        asyncio.create_task(
            _prune_audit(stores.accounts, timedelta(days=config.audit_retention_days))
        ),
        asyncio.create_task(notifications.outbox.run_forever()),
        asyncio.create_task(notifications.pump.run_forever()),
        asyncio.create_task(
            MetricsRefresher(
                metrics,
                engine,
                connected=lambda: len(registry),
                every_seconds=config.metrics_refresh_seconds,
            ).run_forever()
        ),
        listening,
    ]
    try:
        await stop.wait()
    finally:
        for task in background:
            task.cancel()
        log.info("shutting down")
        await health.enter_graceful_shutdown()
        await server.stop(grace=2)
        if web is not None:
            await web.stop()
        await router.close()
        await probe.close()
        try:
            await stores.jobs.flush_progress()  # what the last round did not write yet
        except Exception as e:
            _log_background_failure("could not write the last job progress", e)


HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
# Services whose health is reported: "" (the whole server) and each Comet service.
HEALTH_NAMES = (
    "",
    "comet.v1.AuthService",
    "comet.v1.AgentService",
    "comet.v1.AdminService",
    "comet.v1.StorageService",
    "comet.v1.NotificationService",
)


def _health_setter(health: HealthServicer) -> Callable[[bool], Awaitable[None]]:
    async def publish(up: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if up
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in HEALTH_NAMES:
            await health.set(name, status)

    return publish


def _log_background_failure(what: str, error: Exception) -> None:
    log_background_failure(log, what, error)


async def _flush_seen(accounts: AccountStore, registry: LiveRegistry, every: int) -> None:
    """Records last-seen times of live devices in batches, not one write per beat."""
    while True:
        await asyncio.sleep(every)
        try:
            await accounts.mark_seen(registry.take_seen())
        except Exception as e:  # the database may be briefly away; try next round
            _log_background_failure("could not record last-seen times", e)


async def _prune_commands(router: CommandRouter) -> None:
    """Routed commands are kept a day for inspection, then removed."""
    while True:
        try:
            await router.prune()
        except Exception as e:
            _log_background_failure("could not prune routed commands", e)
        await asyncio.sleep(3600)


async def _prune_audit(accounts: AccountStore, retention: timedelta) -> None:
    """Audit events are kept for the configured period, then deleted."""
    while True:
        try:
            pruned = await accounts.audit_log.prune(retention)
            if pruned:
                log.info("audit: %d events older than %s deleted", pruned, retention)
        except Exception:
            log.exception("could not prune the audit log")
        await asyncio.sleep(AUDIT_PRUNE_SECONDS)
