"""Prometheus metrics of one server instance, served at ``/metrics`` on a plain HTTP
listener (``comet-server serve --metrics-listen HOST:PORT``).

Counters count what this instance did (Prometheus sums instances); gauges read from
the database (jobs, queue depth, last good backups) are the same on every instance
and are refreshed every few seconds, so a scrape never waits on the database."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.errors import ListenError, ServerError
from comet.server.listen import listen_failure
from comet.server.notify.outbox import PENDING
from comet.server.store.availability import log_background_failure
from comet.server.store.jobs import JobClassification, JobStatus
from comet.server.store.models import Device, NotifyDelivery, User

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

log = logging.getLogger(__name__)
Ctx = grpc.aio.ServicerContext[Any, Any]

RPC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_BUCKETS = (1, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)


def _name(enum: type[JobStatus] | type[JobClassification], code: int) -> str:
    try:
        return enum(code).name
    except ValueError:
        return str(code)


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rpc_calls = Counter(
            "comet_rpc_calls",
            "RPCs handled, by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "comet_rpc_duration_seconds",
            "Time to answer a unary RPC",
            ["method"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.login_failures = Counter(
            "comet_login_failures", "Failed logins (wrong password, code or role)", registry=r
        )
        self.jobs_ended = Counter(
            "comet_jobs_ended",
            "Jobs that ended, by classification and status",
            ["classification", "status"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "comet_job_duration_seconds",
            "Duration of ended jobs",
            ["classification"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "comet_notify_deliveries",
            "Mail and webhook delivery attempts",
            ["kind", "result"],
            registry=r,
        )
        self.connected_agents = Gauge(
            "comet_connected_agents",
            "Agents holding a live connection to this instance",
            registry=r,
        )
        self.jobs = Gauge(
            "comet_jobs",
            "Jobs in the database, by classification and status",
            ["classification", "status"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "comet_notify_queue_depth",
            "Mails and webhook calls waiting to be delivered",
            ["kind"],
            registry=r,
        )
        self.queue_failed = Gauge(
            "comet_notify_failed",
            "Deliveries given up after all retries (kept 30 days)",
            ["kind"],
            registry=r,
        )
        self.last_good_backup = Gauge(
            "comet_device_last_good_backup_timestamp_seconds",
            "When a device's last successful (or warning) backup ended, Unix time",
            ["device_id", "device_name", "user"],
            registry=r,
        )
        self.db_pool = Gauge(
            "comet_db_pool_connections",
            "Database pool connections by state",
            ["state"],
            registry=r,
        )

    # ------------------------------------------------------------------ event hooks

    def job_ended(self, classification: str, status: str, seconds: float) -> None:
        self.jobs_ended.labels(classification, status).inc()
        self.job_seconds.labels(classification).observe(seconds)

    def login_failed(self) -> None:
        self.login_failures.inc()

    def delivered(self, kind: str, *, ok: bool) -> None:
        self.deliveries.labels(kind, "ok" if ok else "failed").inc()

    # ------------------------------------------------------------------ serving

    def serve(self, listen: str) -> int:
        """Starts the HTTP listener (a thread); returns its port."""
        host, _, port = listen.rpartition(":")
        try:
            server, _thread = start_http_server(
                int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry
            )
        except OSError as e:
            raise ListenError(listen_failure(listen, e, option="--metrics-listen")) from e
        except ValueError as e:
            raise ServerError(f"cannot serve metrics on {listen}: {e}") from e
        return int(server.server_port)


class MetricsRefresher:
    """Keeps the database-derived gauges current.

    The job counts are kept per partition of ``jobs`` (one a month): a partition is
    counted again only when PostgreSQL's statistics say rows were inserted, updated or
    deleted in it since it was last counted (``pg_stat_user_tables``), so a round
    counts this month's rows, not a million; the counts still cover every job row (a
    change shows within about a second of its commit, when its statistics are
    flushed). Everything is counted afresh every ``FULL_RECOUNT_SECONDS`` too. The
    per-device gauges are set only where a value changed, and the rows are read in
    chunks, so the event loop serving the console is not held for the whole fleet."""

    FULL_RECOUNT_SECONDS = 3600.0
    CHUNK = 2000

    def __init__(
        self,
        metrics: ServerMetrics,
        engine: AsyncEngine,
        *,
        connected: Callable[[], int],
        every_seconds: float = 10.0,
    ) -> None:
        self._metrics = metrics
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._connected = connected
        self._every = every_seconds
        # partition -> (its insert+update+delete statistics when counted, its counts)
        self._partitions: dict[str, tuple[int, list[tuple[int, int, int]]]] = {}
        self._counted_all_at = float("-inf")
        self._good: dict[tuple[str, str, str], float] = {}
        self.partitions_counted = 0  # in the last round (tests, diagnostics)

    async def _job_counts(self, s: AsyncSession) -> dict[tuple[int, int], int]:
        if time.monotonic() - self._counted_all_at > self.FULL_RECOUNT_SECONDS:
            self._partitions.clear()
            self._counted_all_at = time.monotonic()
        changes = (
            await s.execute(
                text(
                    "SELECT c.relname, coalesce(t.n_tup_ins + t.n_tup_upd + t.n_tup_del, -1)"
                    " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " LEFT JOIN pg_stat_user_tables t ON t.relid = c.oid"
                    " WHERE i.inhparent = 'jobs'::regclass"
                )
            )
        ).all()
        present = {name for name, _ in changes}
        for gone in set(self._partitions) - present:
            del self._partitions[gone]
        self.partitions_counted = 0
        for name, changed in changes:
            cached = self._partitions.get(name)
            if cached is not None and cached[0] == changed and changed >= 0:
                continue
            quoted = name.replace('"', '""')
            rows = await s.execute(
                text(f'SELECT classification, status, count(*) FROM "{quoted}" GROUP BY 1, 2')
            )
            self._partitions[name] = (changed, [(c, st, n) for c, st, n in rows.all()])
            self.partitions_counted += 1
        totals: dict[tuple[int, int], int] = {}
        for _, counts in self._partitions.values():
            for classification, status, n in counts:
                key = (classification, status)
                totals[key] = totals.get(key, 0) + n
        return totals

    async def refresh(self) -> None:
        m = self._metrics
        m.connected_agents.set(self._connected())
        pool: Any = self._engine.pool
        for state, value in (
            ("size", pool.size()),
            ("checked_out", pool.checkedout()),
            ("overflow", max(0, pool.overflow())),
        ):
            m.db_pool.labels(state).set(value)
        good: dict[tuple[str, str, str], float] = {}
        async with self._sessions() as s:
            jobs = await self._job_counts(s)
            queue = (
                await s.execute(
                    select(NotifyDelivery.kind, NotifyDelivery.status, func.count())
                    .where(NotifyDelivery.status != "sent")
                    .group_by(NotifyDelivery.kind, NotifyDelivery.status)
                )
            ).all()
            # Each device's backup summary (migration 0017), not the job history.
            devices = await s.stream(
                select(Device.id, Device.name, User.username, Device.last_good_backup_at)
                .join(User, User.id == Device.user_id)
                .where(Device.revoked_at.is_(None), Device.last_good_backup_at.is_not(None))
                .execution_options(yield_per=self.CHUNK)
            )
            async for chunk in devices.partitions():
                for device_id, name, username, ended in chunk:
                    if ended is not None:
                        good[(device_id, name, username)] = ended.timestamp()
        m.jobs.clear()
        for (classification, status), n in sorted(jobs.items()):
            m.jobs.labels(_name(JobClassification, classification), _name(JobStatus, status)).set(n)
        for kind in ("email", "webhook"):
            m.queue_depth.labels(kind).set(0)
            m.queue_failed.labels(kind).set(0)
        for queue_kind, queue_status, n in queue:
            gauge = m.queue_depth if queue_status == PENDING else m.queue_failed
            gauge.labels(queue_kind).set(n)
        for gone in self._good.keys() - good.keys():
            m.last_good_backup.remove(*gone)
        changed = [(k, v) for k, v in good.items() if self._good.get(k) != v]
        for start in range(0, len(changed), self.CHUNK):
            for labels, value in changed[start : start + self.CHUNK]:
                m.last_good_backup.labels(*labels).set(value)
            await asyncio.sleep(0)  # let requests in between chunks
        self._good = good

    async def run_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as e:  # the database may be briefly away; try next round
                log_background_failure(log, "could not refresh metrics", e)
            await asyncio.sleep(self._every)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every RPC by method and final status code, and times unary ones."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _measured(handler, handler_call_details.method, self._metrics)


def _code(context: Ctx, error: BaseException | None) -> str:
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        if isinstance(error, asyncio.CancelledError):
            return "CANCELLED"
        if isinstance(error, ServerError):
            return "ERROR"  # mapped further in; the code is not known here
        return "UNKNOWN"
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return {c.value[0]: c.name for c in grpc.StatusCode}.get(code, str(code))
    return "OK"


def _measured(handler: Handler, method: str, metrics: ServerMetrics) -> Handler:
    calls, seconds = metrics.rpc_calls, metrics.rpc_seconds
    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None or handler.stream_unary is not None:
        unary: Any = handler.unary_unary or handler.stream_unary

        async def single(request: Any, context: Ctx) -> Any:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return await unary(request, context)
            except BaseException as e:
                error = e
                raise
            finally:
                seconds.labels(method).observe(time.perf_counter() - started)
                calls.labels(method, _code(context, error)).inc()

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(single, **options)
        return grpc.stream_unary_rpc_method_handler(single, **options)
    streaming: Any = handler.unary_stream or handler.stream_stream

    async def stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
        error: BaseException | None = None
        try:
            async for reply in streaming(request, context):
                yield reply
        except BaseException as e:
            error = e
            raise
        finally:
            calls.labels(method, _code(context, error)).inc()

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream, **options)
    return grpc.stream_stream_rpc_method_handler(stream, **options)
