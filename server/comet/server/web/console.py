"""What the console's pages and the HTTP API show and do, once: each method reads
the stores (or calls ``Administration``) and returns plain data. The API turns it
into JSON, the pages into HTML; neither adds rules of its own.

Passwords typed into the console are turned into the login secret here, with the
account's own KDF, exactly as a device or ``comet-admin`` does before sending it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server import validation
from comet.server.administration import Administration
from comet.server.buckets.store import BucketRecord, BucketStore
from comet.server.errors import DeviceOfflineError, InvalidRequestError
from comet.server.rpc import convert
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
from comet.v1 import common_pb2, control_pb2

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


def chosen_role(value: str) -> Role:
    """A role the caller must name (changing one: no default to fall back on)."""
    if not value:
        raise InvalidRequestError(f"choose a role: one of {', '.join(ROLE_NAMES)}")
    return parse_role(value)


def admin_role(value: str) -> Role:
    """An administrator's role (the admins page adds no plain users)."""
    role = chosen_role(value)
    if not role.is_admin:
        raise InvalidRequestError("an administrator's role is super, operator or auditor")
    return role


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

    async def job_rows(self, query: JobQuery) -> tuple[list[tuple[Any, ...]], str]:
        """``jobs`` as plain rows of ``EXPORT_COLUMNS`` (the CSV export), and the next
        page's token."""
        if query.username:
            await self.accounts.user_id(query.username)  # NotFound for a typo
        return await self._jobs.export_rows(query)

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
        self, caller: Principal, device_id: str, *, source: str, own: bool = False
    ) -> str:
        """Starts a backup of every schedule's item x vault of the device's own Protected
        Items (the first one, if there are several); returns the job id. ``own``: the
        caller is the device's owner in the customer portal (any item of theirs, only
        their own devices: ``Administration.dispatch_own``)."""
        owner = await self._owner(caller, device_id, own=own, source=source)
        doc = await self._document(owner)
        owned = {i.get("item_id") for i in doc["items"] if i.get("owner_device_id") == device_id}
        schedule = next((s for s in doc["schedules"] if s.get("item_id") in owned), None)
        if schedule is None:
            raise InvalidRequestError(
                "this device has no schedule for its Protected Items yet: add one on the "
                "device (Comet Backup app or 'comet schedule add') first"
            )
        # The schedule's own bandwidth limit holds for a run started from here too.
        options = common_pb2.BackupOptions(
            bandwidth_limit_bps=int(schedule.get("bandwidth_limit_bps") or 0)
        )
        command = control_pb2.Command(
            run_backup=control_pb2.RunBackupCommand(
                item_id=str(schedule.get("item_id", "")),
                vault_id=str(schedule.get("vault_id", "")),
                options=options,
            )
        )
        if own:
            reply = await self.admin.dispatch_own(caller, device_id, command, source=source)
        else:
            reply = await self.admin.dispatch(caller, device_id, command, source=source, timeout=30)
        job_id = _started(reply)
        if job_id:
            # The job's page, shown next, should find the job rather than answer 404.
            with contextlib.suppress(DeviceOfflineError):
                await self.admin.wait_for_job(job_id, 10.0, first_report=True)
        return job_id

    async def retention(
        self, admin: Principal, device_id: str, *, vault_id: str, source: str
    ) -> str:
        """Runs the retention rules of a Storage Vault on the device (the vault of the
        device's first schedule unless ``vault_id``); returns the job id."""
        vault = await self._vault(device_id, vault_id)
        command = control_pb2.Command(apply_retention=control_pb2.VaultJobCommand(vault_id=vault))
        reply = await self.admin.dispatch(admin, device_id, command, source=source, timeout=30)
        return _started(reply)

    async def verify(
        self, admin: Principal, device_id: str, *, vault_id: str, read_data: bool, source: str
    ) -> str:
        """Verifies a Storage Vault from the device (``read_data``: every chunk too)."""
        vault = await self._vault(device_id, vault_id)
        command = control_pb2.Command(
            verify=control_pb2.VerifyCommand(vault_id=vault, read_data=read_data)
        )
        reply = await self.admin.dispatch(admin, device_id, command, source=source, timeout=30)
        return _started(reply)

    async def cancel(self, admin: Principal, device_id: str, job_id: str, *, source: str) -> str:
        """Cancels ``job_id`` on the device, or (none given) its latest running job;
        returns the job id."""
        validation.device_id(device_id)
        if not job_id:
            running = await self._jobs.find(
                JobQuery(device_id=device_id, statuses=RUNNING, page_size=1)
            )
            if not running.jobs:
                raise InvalidRequestError("no job is running on this device")
            job_id = running.jobs[0].job_id
        command = control_pb2.Command(cancel_job=control_pb2.CancelJobCommand(job_id=job_id))
        reply = await self.admin.dispatch(admin, device_id, command, source=source, timeout=30)
        if reply.error:
            raise InvalidRequestError(f"the device refused: {reply.error}")
        return job_id

    async def _owner(self, caller: Principal, device_id: str, *, own: bool, source: str) -> str:
        if own:  # another account's device: as if there were none (and audited)
            await self.admin.check_own_device(caller, device_id, action="run_backup", source=source)
            return caller.user_id
        validation.device_id(device_id)
        return await self.accounts.device_owner(device_id)

    async def _document(self, owner: str) -> dict[str, Any]:
        view = await self._profiles.get(owner, reveal_secrets=False)
        return profile_document.normalised(view.document)

    async def _vault(self, device_id: str, vault_id: str) -> str:
        """``vault_id`` if the device's account has it; none given: the vault of the
        device's first schedule, else the account's only vault."""
        validation.device_id(device_id)
        doc = await self._document(await self.accounts.device_owner(device_id))
        vaults = [str(v.get("vault_id", "")) for v in doc["vaults"]]
        validation.text(vault_id, field="the vault id", max_len=validation.NAME_MAX)
        if vault_id:
            if vault_id not in vaults:
                raise InvalidRequestError(f"the device's account has no Storage Vault {vault_id!r}")
            return vault_id
        owned = {i.get("item_id") for i in doc["items"] if i.get("owner_device_id") == device_id}
        scheduled = [
            str(s.get("vault_id", "")) for s in doc["schedules"] if s.get("item_id") in owned
        ]
        if scheduled and scheduled[0] in vaults:
            return scheduled[0]
        if len(vaults) == 1:
            return vaults[0]
        raise InvalidRequestError(
            "choose a Storage Vault: the device has no schedule"
            + (" and its account has several vaults" if vaults else " and its account no vault")
        )

    # ------------------------------------------------------------------ policies

    def policy_input(
        self,
        *,
        policy_id: str = "",
        name: str,
        is_default: bool,
        version: str = "",
        body_json: str = "",
        flags: list[str] | None = None,
        numbers: dict[str, str] | None = None,
    ) -> common_pb2.Policy:
        """A Policy message from the console's form: the JSON of the rest of the policy
        (as in a ``comet-admin policy`` file), with the form's own fields over it. Parsed
        by the same ``convert.policy_message`` as the CLI's file."""
        try:
            body = json.loads(body_json) if body_json.strip() else {}
        except ValueError as e:
            raise InvalidRequestError(f"the policy JSON is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise InvalidRequestError("the policy JSON must be an object ({...})")
        for key in (*FORM_NUMBERS, "flags", "policy_id", "name", "is_default", "version"):
            body.pop(key, None)
        body["flags"] = {flag: True for flag in flags or ()}
        for key, value in (numbers or {}).items():
            if key in FORM_NUMBERS and value.strip():
                body[key] = value.strip()
        body.update(name=name, is_default=is_default)
        if version.strip():
            body["version"] = version.strip()
        policy = convert.policy_message(body)
        policy.policy_id = policy_id
        return policy

    async def policy(self, policy_id: str) -> PolicyRecord:
        validation.text(policy_id, field="the policy id", max_len=validation.NAME_MAX)
        return await self._policies.get(policy_id)

    # ------------------------------------------------------------------ admins

    async def admins(self) -> list[UserRecord]:
        return await self._directory.admins()


# The policy form's own fields (besides name, default and the flags).
FORM_NUMBERS = ("storage_quota_bytes", "max_buckets", "force_immutable_days")
POLICY_FLAGS = tuple(f.name for f in common_pb2.PolicyFlags.DESCRIPTOR.fields)
RUNNING = tuple(s for s in JobStatus if s.is_running)


def policy_form_values(policy: PolicyRecord | None) -> dict[str, Any]:
    """What the policy form shows for a stored policy (empty for a new one)."""
    body = dict(policy.body) if policy else {}
    flags = body.pop("flags", {}) or {}
    numbers = {k: str(body.pop(k, "") or "") for k in FORM_NUMBERS}
    return {
        "policy_id": policy.policy_id if policy else "",
        "name": policy.name if policy else "",
        "is_default": policy.is_default if policy else False,
        "version": str(policy.version) if policy else "",
        "flags": [f for f, on in flags.items() if on],
        "numbers": numbers,
        "body_json": json.dumps(body, indent=2, sort_keys=True) if body else "",
    }


def _started(reply: control_pb2.CommandReply) -> str:
    """The job a command started; the device's refusal as an error."""
    if reply.error:
        raise InvalidRequestError(f"the device refused: {reply.error}")
    return reply.job_started.job_id if reply.HasField("job_started") else ""


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
