"""What the console's pages and the HTTP API show and do, once: each method reads
the stores (or calls ``Administration``) and returns plain data. The API turns it
into JSON, the pages into HTML; neither adds rules of its own.

Passwords typed into the console are turned into the login secret here, with the
account's own KDF, exactly as a device or ``comet-admin`` does before sending it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server import validation
from comet.server.administration import Administration
from comet.server.buckets.store import BucketRecord, BucketStore
from comet.server.errors import InvalidRequestError, NotFoundError
from comet.server.store import profile_document
from comet.server.store.accounts import AccountStore, DeviceRecord, Principal, Role, UserRecord
from comet.server.store.directory import Directory
from comet.server.store.jobs import (
    JobClassification,
    JobPage,
    JobQuery,
    JobRecord,
    JobStatus,
    JobStore,
    LogLine,
)
from comet.server.store.models import AuditEvent
from comet.server.store.overview import (
    AttentionDevice,
    DatabaseFacts,
    OverviewStore,
    ServerInstance,
)
from comet.server.store.policies import PolicyRecord, PolicyStore
from comet.server.store.profiles import ProfileStore
from comet.v1 import control_pb2

PAGE_SIZE = 50
DASHBOARD_BUCKETS = 10
MAX_PAGE_SIZE = 500
T = TypeVar("T")
ROLE_NAMES = {
    "user": Role.USER,
    "super": Role.SUPER_ADMIN,
    "operator": Role.OPERATOR,
    "auditor": Role.AUDITOR,
}


def role_name(role: Role) -> str:
    return next(name for name, r in ROLE_NAMES.items() if r is role)


def parse_role(value: str) -> Role:
    try:
        return ROLE_NAMES[value or "user"]
    except KeyError:
        raise InvalidRequestError(
            f"unknown role {value!r}: one of {', '.join(ROLE_NAMES)}"
        ) from None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    pages: int
    total: int


def _page_size(per_page: int) -> int:
    return min(max(per_page, 1), MAX_PAGE_SIZE)


def _page(items: list[T], page: int, size: int, total: int) -> Page[T]:
    return Page(items, page, max(1, -(-total // size)), total)


@dataclass(frozen=True)
class Dashboard:
    devices_online: int
    devices_offline: int
    jobs_24h: dict[str, int]
    attention: list[AttentionDevice]  # the first ATTENTION_SHOWN
    attention_total: int
    buckets: list[BucketRecord]  # the DASHBOARD_BUCKETS largest
    buckets_total: int
    instances: list[ServerInstance]


@dataclass(frozen=True)
class UserDetail:
    user: UserRecord
    devices: list[DeviceRecord]
    items: list[dict[str, Any]]
    vaults: list[dict[str, Any]]
    schedules: list[dict[str, Any]]
    jobs: list[JobRecord]
    policy: PolicyRecord | None


@dataclass(frozen=True)
class ServerInfo:
    version: str
    instance_id: str
    instances: list[ServerInstance]
    database: DatabaseFacts


async def login_secret(password: str, kdf: KdfParams) -> bytes:
    """The login secret of ``password`` (scrypt: off the event loop)."""
    secrets = await asyncio.to_thread(derive_login_secrets, password, kdf)
    return secrets.auth_key


def _check_new_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidRequestError("a password needs at least 8 characters")


class Console:
    def __init__(
        self,
        *,
        accounts: AccountStore,
        profiles: ProfileStore,
        policies: PolicyStore,
        jobs: JobStore,
        buckets: BucketStore,
        overview: OverviewStore,
        directory: Directory,
        administration: Administration,
        instance_id: str,
        version: str,
    ) -> None:
        self.accounts = accounts
        self._profiles = profiles
        self._policies = policies
        self._jobs = jobs
        self._buckets = buckets
        self._overview = overview
        self._directory = directory
        self.admin = administration
        self._instance_id = instance_id
        self._version = version

    # ------------------------------------------------------------------ reads

    async def dashboard(self) -> Dashboard:
        # Independent reads, each on its own pooled connection: at once.
        (
            (online, offline),
            by_status,
            attention,
            (buckets, buckets_total),
            instances,
        ) = await asyncio.gather(
            self._directory.device_counts(),
            self._overview.jobs_by_status(timedelta(hours=24)),
            self._overview.needing_attention(),
            self._buckets.page_buckets(offset=0, limit=DASHBOARD_BUCKETS, largest_first=True),
            self._overview.instances(self._instance_id),
        )
        return Dashboard(
            devices_online=online,
            devices_offline=offline,
            jobs_24h={s.name: n for s, n in sorted(by_status.items())},
            attention=attention.devices,
            attention_total=attention.total,
            buckets=buckets,
            buckets_total=buckets_total,
            instances=instances,
        )

    async def users(
        self, *, search: str = "", page: int = 1, per_page: int = PAGE_SIZE
    ) -> Page[UserRecord]:
        size = _page_size(per_page)
        page = max(1, page)
        users, total = await self._directory.users(
            search=search, offset=(page - 1) * size, limit=size
        )
        return _page(users, page, size, total)

    async def user(self, username: str) -> UserDetail:
        user = await self._directory.user(validation.username(username))
        view = await self._profiles.get(user.user_id, reveal_secrets=False)
        doc = profile_document.normalised(view.document)
        vaults = [
            {k: v for k, v in vault.items() if k in ("vault_id", "name", "type")}
            for vault in doc["vaults"]
        ]
        jobs = await self._jobs.find(JobQuery(user_id=user.user_id, page_size=20))
        return UserDetail(
            user=user,
            devices=await self.accounts.list_devices(user_id=user.user_id),
            items=[
                {k: i.get(k) for k in ("item_id", "name", "owner_device_id", "type")}
                for i in doc["items"]
            ],
            vaults=vaults,
            schedules=list(doc["schedules"]),
            jobs=jobs.jobs,
            policy=view.policy,
        )

    async def devices(
        self,
        *,
        search: str = "",
        online: str = "",
        page: int = 1,
        user_id: str | None = None,
        per_page: int = PAGE_SIZE,
    ) -> Page[DeviceRecord]:
        size = _page_size(per_page)
        page = max(1, page)
        state = {"online": True, "offline": False}.get(online)
        devices, total = await self._directory.devices(
            search=search, online=state, user_id=user_id, offset=(page - 1) * size, limit=size
        )
        return _page(devices, page, size, total)

    async def jobs(self, query: JobQuery) -> JobPage:
        if query.username:
            await self.accounts.user_id(query.username)  # NotFound for a typo
        return await self._jobs.find(query)

    async def job(self, job_id: str, *, user_id: str = "") -> tuple[JobRecord, list[LogLine]]:
        return await self._jobs.log(job_id, user_id=user_id)

    async def job_updates(
        self, job_id: str, *, user_id: str = "", every: float = 1.0
    ) -> AsyncIterator[JobRecord]:
        """The job each time its status, counters or progress change, until it ends
        (live progress: devices report it, the server writes it every second)."""
        last: JobRecord | None = None
        while True:
            job, _ = await self._jobs.log(job_id, user_id=user_id)
            if job != last:
                yield job
                last = job
            if not job.status.is_running:
                return
            await asyncio.sleep(every)

    async def audit(
        self, *, action: str = "", limit: int = 200, before_id: int = 0
    ) -> list[AuditEvent]:
        """Newest first; the next page: ``before_id`` = the last event's id."""
        return await self.accounts.list_audit(
            action=action, limit=min(max(limit, 1), 1000), before_id=before_id
        )

    async def policies(self) -> list[PolicyRecord]:
        return await self._policies.all()

    async def policies_in_use(self) -> tuple[list[PolicyRecord], dict[str, int]]:
        """Every policy, and how many users each is assigned to."""
        return await self._policies.all(), await self._directory.users_per_policy()

    async def buckets(self, *, page: int = 1, per_page: int = PAGE_SIZE) -> Page[BucketRecord]:
        size = _page_size(per_page)
        page = max(1, page)
        buckets, total = await self._buckets.page_buckets(offset=(page - 1) * size, limit=size)
        return _page(buckets, page, size, total)

    async def server(self) -> ServerInfo:
        return ServerInfo(
            version=self._version,
            instance_id=self._instance_id,
            instances=await self._overview.instances(self._instance_id),
            database=await self._overview.database(),
        )

    # ------------------------------------------------------------------ changes

    async def add_user(
        self,
        admin: Principal,
        *,
        username: str,
        password: str,
        role: Role,
        max_devices: int,
        source: str,
    ) -> UserRecord:
        _check_new_password(password)
        validation.username(username)  # before the costly derivation
        kdf = KdfParams.new()
        return await self.admin.add_user(
            admin, username, kdf, await login_secret(password, kdf),
            role=role, max_devices=max_devices, source=source,
        )  # fmt: skip

    async def reset_password(
        self,
        admin: Principal,
        username: str,
        *,
        password: str,
        force: bool,
        revoke_devices: bool,
        source: str,
    ) -> int:
        _check_new_password(password)
        await self.accounts.user_id(username)  # NotFound before the costly derivation
        kdf = KdfParams.new()
        reset = await self.admin.reset_password(
            admin, username, kdf, await login_secret(password, kdf),
            force=force, revoke_devices=revoke_devices, source=source,
        )  # fmt: skip
        return len(reset.revoked_devices)

    async def backup_now(
        self, admin: Principal, device_id: str, *, source: str, owner_id: str = ""
    ) -> str:
        """Starts a backup of every schedule's item x vault of the device's own Protected
        Items (the first one, if there are several); returns the job id. With
        ``owner_id``, only a device of that account (the customer portal)."""
        owner = await self.accounts.device_owner(device_id)
        if owner_id and owner != owner_id:
            raise NotFoundError(f"no device {device_id!r}")
        view = await self._profiles.get(owner, reveal_secrets=False)
        doc = profile_document.normalised(view.document)
        owned = {i.get("item_id") for i in doc["items"] if i.get("owner_device_id") == device_id}
        schedule = next((s for s in doc["schedules"] if s.get("item_id") in owned), None)
        if schedule is None:
            raise InvalidRequestError(
                "this device has no schedule for its Protected Items yet: add one on the "
                "device (Comet Backup app or 'comet schedule add') first"
            )
        command = control_pb2.Command(
            run_backup=control_pb2.RunBackupCommand(
                item_id=str(schedule.get("item_id", "")), vault_id=str(schedule.get("vault_id", ""))
            )
        )
        reply = await self.admin.dispatch(admin, device_id, command, source=source, timeout=30)
        if reply.error:
            raise InvalidRequestError(f"the device refused: {reply.error}")
        return reply.job_started.job_id if reply.HasField("job_started") else ""

    async def cancel(self, admin: Principal, device_id: str, job_id: str, *, source: str) -> None:
        command = control_pb2.Command(cancel_job=control_pb2.CancelJobCommand(job_id=job_id))
        reply = await self.admin.dispatch(admin, device_id, command, source=source, timeout=30)
        if reply.error:
            raise InvalidRequestError(f"the device refused: {reply.error}")


def job_query(params: dict[str, str], *, user_id: str = "") -> JobQuery:
    """A job filter from query parameters: user, device, item, vault, status,
    classification (names or codes), since/until (ISO 8601), page (a token)."""

    def codes(value: str, kind: type[JobStatus] | type[JobClassification]) -> tuple[Any, ...]:
        out = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                out.append(kind(int(part)) if part.isdigit() else kind[part.upper()])
            except (KeyError, ValueError):
                raise InvalidRequestError(f"unknown {kind.__name__} {part!r}") from None
        return tuple(out)

    def when(value: str) -> datetime | None:
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequestError(f"{value!r} is not an ISO 8601 time") from None
        return parsed if parsed.tzinfo else parsed.astimezone()

    limit = params.get("limit", "")
    return JobQuery(
        user_id=user_id,
        username="" if user_id else params.get("user", ""),
        device_id=params.get("device", ""),
        item_id=params.get("item", ""),
        vault_id=params.get("vault", ""),
        statuses=codes(params.get("status", ""), JobStatus),
        classifications=codes(params.get("classification", ""), JobClassification),
        since=when(params.get("since", "")),
        until=when(params.get("until", "")),
        page_size=int(limit) if limit.isdigit() else 0,
        page_token=params.get("page", ""),
    )


def portal_principal(user: Principal) -> Principal:
    """The account owner starting a backup of their own device: judged as an
    OPERATOR would be for the command (a plain backup; never a program), since the
    portal's own row (portal.backup_own) has already allowed the request."""
    return Principal(user.user_id, user.username, Role.OPERATOR, admin_session=True)
