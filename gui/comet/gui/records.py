"""Plain records the views work with: what the agent told us, without protobuf.

``agent_client`` converts wire messages into these at the edge; views, models and
dialogs only ever see records. Numeric codes are Comet's published constants
(see comet-concepts.md) so they read the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum


class Classification(IntEnum):
    """What a job is (Comet's job classification codes)."""

    UNKNOWN = 4000
    BACKUP = 4001
    RESTORE = 4002
    RETENTION = 4003
    UNLOCK = 4004
    DELETE_SNAPSHOT = 4005
    REMEASURE = 4006
    SOFTWARE_UPDATE = 4007
    IMPORT = 4008
    REINDEX = 4009
    DEEP_VERIFY = 4010
    UNINSTALL = 4011

    @property
    def label(self) -> str:
        return _CLASSIFICATION_LABELS[self]


_CLASSIFICATION_LABELS = {
    Classification.UNKNOWN: "Unknown",
    Classification.BACKUP: "Backup",
    Classification.RESTORE: "Restore",
    Classification.RETENTION: "Retention pass",
    Classification.UNLOCK: "Unlock",
    Classification.DELETE_SNAPSHOT: "Delete snapshot",
    Classification.REMEASURE: "Remeasure",
    Classification.SOFTWARE_UPDATE: "Software update",
    Classification.IMPORT: "Import",
    Classification.REINDEX: "Rebuild indexes",
    Classification.DEEP_VERIFY: "Deep verify",
    Classification.UNINSTALL: "Uninstall",
}


class JobStatus(IntEnum):
    """How a job went (Comet's job status codes): 5xxx ok, 6xxx running, 7xxx not ok."""

    UNKNOWN = 0
    SUCCESS = 5000
    RUNNING = 6001
    RUNNING_REVIVED = 6002
    WAITING_TO_RETRY = 6003
    TIMEOUT = 7000
    WARNING = 7001
    ERROR = 7002
    QUOTA_EXCEEDED = 7003
    MISSED = 7004
    CANCELLED = 7005
    SKIPPED = 7006
    ABANDONED = 7007

    @property
    def running(self) -> bool:
        return 6000 <= self.value < 7000

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


class ItemType(IntEnum):
    FILES = 1
    PROGRAM = 2

    @property
    def label(self) -> str:
        return "Files and Folders" if self is ItemType.FILES else "Program Output"


class VaultType(IntEnum):
    UNSPECIFIED = 0
    S3 = 1000
    SFTP = 1001
    LOCAL = 1002
    COMET = 1003

    @property
    def label(self) -> str:
        return {
            VaultType.S3: "S3-compatible",
            VaultType.SFTP: "SFTP",
            VaultType.LOCAL: "Local Path",
            VaultType.COMET: "Comet Server",
        }.get(self, "Other")


class Severity(IntEnum):
    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4

    @property
    def letter(self) -> str:
        return self.name[0]


class RestoreType(IntEnum):
    """Comet's restore type codes."""

    FILES = 0
    SIMULATE = 1
    PROGRAM_PER_FILE = 2
    PROGRAM_ARCHIVE = 3
    ARCHIVE_FILE = 5


class ArchiveFormat(IntEnum):
    TAR = 0
    TAR_GZ = 1
    ZIP = 2
    SQFS = 3
    TAR_ZST = 4

    @property
    def extension(self) -> str:
        return {
            ArchiveFormat.TAR: "tar",
            ArchiveFormat.TAR_GZ: "tar.gz",
            ArchiveFormat.ZIP: "zip",
            ArchiveFormat.SQFS: "sqfs",
            ArchiveFormat.TAR_ZST: "tar.zst",
        }[self]


@dataclass(frozen=True)
class AgentStatus:
    logged_in: bool = False
    locked: bool = False
    server: str = ""
    username: str = ""
    device_id: str = ""
    device_name: str = ""
    connected: bool = False
    running_jobs: tuple[str, ...] = ()
    version: str = ""
    last_error: str = ""


@dataclass(frozen=True)
class LoginResult:
    status: AgentStatus
    device_registered_now: bool


@dataclass(frozen=True)
class ServerCertificate:
    """What an https server presents, as the agent sees it before a login."""

    secure: bool
    fingerprint: str = ""
    verified: bool = False  # valid under the system's certificate authorities
    pinned_fingerprint: str = ""  # trusted at an earlier login on this device
    problem: str = ""


@dataclass(frozen=True)
class SftpHostKey:
    """The host key an SFTP server presents, as the agent sees it before a vault pins it."""

    host_key: str  # "<type> <base64>": the value to pin
    fingerprint: str  # SHA256:…
    key_type: str
    matches: bool = False  # the key the person typed (if any) is this one


class RetentionKind(IntEnum):
    """The retention ranges the app edits (Comet's retention range codes)."""

    KEEP_LAST = 900  # the N most recent snapshots
    KEEP_WITHIN_DAYS = 902  # snapshots of the last N days
    ONE_PER_DAY = 907  # last N backups, one per day
    ONE_PER_WEEK = 908
    ONE_PER_MONTH = 909

    @property
    def label(self) -> str:
        return _RETENTION_LABELS[self]


_RETENTION_LABELS = {
    RetentionKind.KEEP_LAST: "Keep the last N snapshots",
    RetentionKind.KEEP_WITHIN_DAYS: "Keep snapshots of the last N days",
    RetentionKind.ONE_PER_DAY: "Keep one per day, for N days",
    RetentionKind.ONE_PER_WEEK: "Keep one per week, for N weeks",
    RetentionKind.ONE_PER_MONTH: "Keep one per month, for N months",
}


@dataclass(frozen=True)
class Retention:
    """What a retention pass keeps. No rules = keep everything (mode 801).

    ``custom`` marks a policy using ranges the app cannot edit (set by another tool):
    it is shown, kept as it is, and never rewritten by the app."""

    rules: tuple[tuple[RetentionKind, int], ...] = ()
    custom: bool = False

    @property
    def keeps_everything(self) -> bool:
        return not self.rules and not self.custom

    def count(self, kind: RetentionKind) -> int:
        return next((n for k, n in self.rules if k is kind), 0)

    @property
    def summary(self) -> str:
        if self.custom:
            return "Custom rules (set elsewhere)"
        if not self.rules:
            return "Keep everything"
        return "; ".join(f"{k.label.replace('N', str(n), 1)}" for k, n in self.rules)


class Frequency(IntEnum):
    """Schedule frequencies (Comet's schedule frequency codes): every one the agent runs."""

    ONCE = 8010
    DAILY = 8011
    HOURLY = 8012
    WEEKLY = 8013
    MONTHLY = 8014
    PERIODIC = 8015

    @property
    def label(self) -> str:
        return {
            Frequency.ONCE: "Once",
            Frequency.DAILY: "Daily",
            Frequency.HOURLY: "Hourly",
            Frequency.WEEKLY: "Weekly",
            Frequency.MONTHLY: "Monthly",
            Frequency.PERIODIC: "Every…",
        }[self]


class RetentionTiming(IntEnum):
    """When a scheduled backup runs the vault's retention pass (``retention_level``)."""

    AUTOMATIC = 0
    AFTER_EVERY_JOB = 1
    MORE_OFTEN = 2
    LESS_OFTEN = 3

    @property
    def label(self) -> str:
        return {
            RetentionTiming.AUTOMATIC: "Automatic",
            RetentionTiming.AFTER_EVERY_JOB: "After every backup",
            RetentionTiming.MORE_OFTEN: "More often",
            RetentionTiming.LESS_OFTEN: "At most once a day",
        }[self]


@dataclass(frozen=True)
class Schedule:
    """When an item is backed up to a vault, and how each run behaves: every option of the
    agent's scheduler. ``weekdays``: 0 = Monday (the days of a weekly schedule, else a
    filter; empty = every day). ``window_*_minute``: minutes after local midnight, both or
    neither (None). ``once_at``: timezone-aware."""

    schedule_id: str
    item_id: str
    vault_id: str
    frequency: Frequency
    hour: int = 0
    minute: int = 0
    weekdays: tuple[int, ...] = ()
    every_seconds: int = 0
    skip_if_running: bool = False
    stop_after_seconds: int = 0
    enabled: bool = True
    once_at: datetime | None = None
    day_of_month: int = 1
    offset_seconds: int = 0
    window_start_minute: int | None = None
    window_end_minute: int | None = None
    random_delay_seconds: int = 0
    run_at_boot: bool = False
    run_at_boot_if_missed: bool = False
    retry_count: int = 0
    retry_delay_seconds: int = 0
    bandwidth_limit_bps: int = 0
    retention_timing: RetentionTiming = RetentionTiming.AUTOMATIC


@dataclass(frozen=True)
class AccountSettings:
    account_name: str = ""
    emails: tuple[str, ...] = ()
    language: str = ""
    timezone: str = ""
    allow_admin_view_files: bool = False
    allow_admin_reset_password: bool = False


@dataclass(frozen=True)
class PolicyFlags:
    """What the account's effective policy forbids or hides (read-only for users)."""

    policy_name: str = ""
    prevent_new_item: bool = False
    prevent_edit_item: bool = False
    prevent_delete_item: bool = False
    prevent_edit_vault: bool = False
    prevent_delete_vault: bool = False
    prevent_delete_snapshot: bool = False
    prevent_change_password: bool = False
    prevent_change_email: bool = False
    require_password_to_open_app: bool = False
    hide_import: bool = False
    hide_version: bool = False

    def reason(self, what: str) -> str:
        """A tooltip for a disabled action, naming the policy that disables it."""
        name = f"“{self.policy_name}”" if self.policy_name else "of your account"
        return f"Not allowed: the administrator's policy {name} prevents {what}."


@dataclass(frozen=True)
class ProtectedItem:
    item_id: str
    name: str
    type: ItemType
    owner_device_id: str = ""
    includes: tuple[str, ...] = ()
    exclude_globs: tuple[str, ...] = ()
    exclude_regexes: tuple[str, ...] = ()
    program_command: str = ""
    program_save_as: str = ""
    retention_overrides: tuple[tuple[str, Retention], ...] = ()  # by vault id

    def retention_for(self, vault_id: str) -> Retention | None:
        return next((r for v, r in self.retention_overrides if v == vault_id), None)


@dataclass(frozen=True)
class LocalVaultSettings:
    path: str


@dataclass(frozen=True)
class S3VaultSettings:
    endpoint: str
    bucket: str
    prefix: str = ""
    access_key: str = ""
    secret_key: str = ""
    region: str = ""


@dataclass(frozen=True)
class SftpVaultSettings:
    host: str
    port: int
    username: str
    path: str
    password: str = ""
    private_key: str = ""
    host_key: str = ""


VaultSettings = LocalVaultSettings | S3VaultSettings | SftpVaultSettings | None


@dataclass(frozen=True)
class StorageVault:
    vault_id: str
    name: str
    type: VaultType
    settings: VaultSettings = None
    quota_bytes: int = 0
    default_retention: Retention = field(default_factory=Retention)
    # Immutable: written data cannot be deleted or overwritten for this many days.
    immutable_days: int = 0
    object_lock_compliance: bool = False  # S3: compliance rather than governance mode

    @property
    def location(self) -> str:
        s = self.settings
        if isinstance(s, LocalVaultSettings):
            return s.path
        if isinstance(s, S3VaultSettings):
            return f"{s.endpoint} {s.bucket}/{s.prefix}".rstrip("/")
        if isinstance(s, SftpVaultSettings):
            return f"{s.username}@{s.host}:{s.port}{s.path}"
        return ""


@dataclass(frozen=True)
class Profile:
    username: str
    version: int
    items: tuple[ProtectedItem, ...] = ()
    vaults: tuple[StorageVault, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    settings: AccountSettings = field(default_factory=AccountSettings)
    policy: PolicyFlags = field(default_factory=PolicyFlags)
    recovery_enabled: bool = False

    def schedules_of(self, item_id: str) -> tuple[Schedule, ...]:
        return tuple(s for s in self.schedules if s.item_id == item_id)

    def item(self, item_id: str) -> ProtectedItem | None:
        return next((i for i in self.items if i.item_id == item_id), None)

    def vault(self, vault_id: str) -> StorageVault | None:
        return next((v for v in self.vaults if v.vault_id == vault_id), None)


@dataclass(frozen=True)
class Device:
    device_id: str
    name: str
    os: str = ""
    arch: str = ""
    client_version: str = ""
    registered_at: datetime | None = None
    online: bool = False
    revoked: bool = False


@dataclass(frozen=True)
class JobProgress:
    bytes_done: int = 0
    items_done: int = 0
    bytes_total: int = 0
    items_total: int = 0
    current_path: str = ""


@dataclass(frozen=True)
class Job:
    job_id: str
    classification: Classification
    status: JobStatus
    device_id: str = ""
    item_id: str = ""
    vault_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    files: int = 0
    directories: int = 0
    bytes: int = 0
    uploaded_bytes: int = 0
    downloaded_bytes: int = 0
    progress: JobProgress = field(default_factory=JobProgress)
    snapshot_id: str = ""
    error_message: str = ""

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or datetime.now(self.started_at.tzinfo)
        return max((end - self.started_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class LogEntry:
    time: datetime | None
    severity: Severity
    message: str


@dataclass(frozen=True)
class JobEvent:
    job: Job
    log: tuple[LogEntry, ...]
    ended: bool


@dataclass(frozen=True)
class JobLog:
    job: Job
    entries: tuple[LogEntry, ...]


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    item_id: str
    device_id: str
    time: datetime | None
    files: int = 0
    bytes: int = 0
    paths: tuple[str, ...] = ()
    has_original_paths: bool = False
    item_name: str = ""
    unknown_item: bool = False


@dataclass(frozen=True)
class SnapshotEntry:
    path: str
    is_dir: bool
    size: int = 0
    mtime: datetime | None = None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1] or "/"


@dataclass(frozen=True)
class ImportSource:
    source_id: str
    product: str
    path: str
    description: str = ""


@dataclass(frozen=True)
class FindQuery:
    """A search across snapshots: a name glob, optional size and modification ranges."""

    name_glob: str
    min_size: int = 0
    max_size: int = 0  # 0 = no upper bound
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    limit: int = 1000


@dataclass(frozen=True)
class FoundEntry:
    """A search hit: which snapshot holds which path."""

    snapshot_id: str
    entry: SnapshotEntry


@dataclass(frozen=True)
class SearchResult:
    found: tuple[FoundEntry, ...]
    truncated: bool


@dataclass(frozen=True)
class RestoreSpec:
    """Everything the restore wizard decided; the client turns it into StartRestore."""

    vault_id: str
    snapshot_id: str
    item_id: str
    type: RestoreType
    destination: str = ""
    original_paths: bool = False
    overwrite: bool = False
    paths: tuple[str, ...] = ()
    program_command: str = ""
    archive_format: ArchiveFormat = ArchiveFormat.ZIP


@dataclass(frozen=True)
class TotpEnrolment:
    """A new two-factor secret, pending until confirmed with a code."""

    secret: str  # base32
    uri: str  # otpauth://totp/...
