"""Storage Vaults as the agent sees them: typed settings, opening their storage and
repository, and the vault key hierarchy (a random vault key, kept in the profile only
wrapped by the user's password-derived wrapping key)."""

from __future__ import annotations

import hashlib
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from comet.agent.cancel import CancelToken
from comet.agent.clock import system_clock
from comet.agent.config import lock_hostname_from_env, lock_timing_from_env
from comet.agent.credentials import unwrap_secret, wrap_secret
from comet.agent.errors import AgentError
from comet.agent.repository.format import BlobType
from comet.agent.repository.lock import LockPolicy
from comet.agent.repository.repository import Repository
from comet.agent.storage.base import Storage
from comet.agent.storage.cancellable import CancellableStorage
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.object_lock import Protection
from comet.agent.storage.ratelimit import RateLimitedStorage
from comet.agent.storage.retry import RetryingStorage


class VaultType(IntEnum):
    """Comet's vault type codes."""

    S3 = 1000
    SFTP = 1001
    LOCAL = 1002
    COMET = 1003


class VaultError(AgentError):
    code = "vault"


@dataclass(frozen=True)
class LocalSettings:
    path: str


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    bucket: str
    prefix: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


@dataclass(frozen=True)
class SftpSettings:
    host: str
    port: int
    username: str
    path: str
    password: str = ""
    private_key: str = ""  # PEM text
    host_key: str = ""


@dataclass(frozen=True)
class CometSettings:
    bucket_id: str
    bucket_key: str


VaultSettings = LocalSettings | S3Settings | SftpSettings | CometSettings


@dataclass(frozen=True)
class VaultSpec:
    vault_id: str
    name: str
    type: VaultType
    settings: VaultSettings
    wrapped_vault_key: bytes = b""
    quota_bytes: int = 0
    pre_commands: tuple[str, ...] = ()
    post_commands: tuple[str, ...] = ()
    # Commands of this vault set by other devices (or by nobody known): never run here.
    foreign_commands: tuple[str, ...] = ()
    # Immutable vault: the protection period in seconds (0 = none) and, for S3, the
    # Object Lock mode ("GOVERNANCE" or "COMPLIANCE").
    immutable_seconds: int = 0
    object_lock_mode: str = "GOVERNANCE"


def new_vault_key() -> bytes:
    return os.urandom(32)


def wrap_vault_key(wrap_key: bytes, vault_key: bytes) -> bytes:
    return wrap_secret(wrap_key, vault_key)


def unwrap_vault_key(spec: VaultSpec, wrap_key: bytes) -> bytes:
    if not spec.wrapped_vault_key:
        raise VaultError(f"Storage Vault {spec.name!r} has no key yet; it was never initialised")
    return unwrap_secret(wrap_key, spec.wrapped_vault_key)


def open_storage(
    spec: VaultSpec, *, key_dir: Path, server_url: str = "", delete_grant: str = ""
) -> Storage:
    """The vault's storage; network backends are wrapped to retry transient errors.
    ``server_url`` is the Comet Server this agent is logged in to, which hosts the
    buckets of "Comet Server" vaults."""
    settings = spec.settings
    if isinstance(settings, LocalSettings):
        if not os.path.isabs(settings.path):
            raise VaultError(f"a local vault path must be absolute, not {settings.path!r}")
        return LocalStorage(Path(settings.path))
    # Network backends are imported on first use: boto3, paramiko and the gRPC stubs
    # cost tens of MB of memory in an agent that may only ever use local vaults.
    if isinstance(settings, S3Settings):
        from comet.agent.storage.s3 import S3Config, S3Storage

        return RetryingStorage(
            S3Storage(
                S3Config(
                    endpoint_url=settings.endpoint or None,
                    bucket=settings.bucket,
                    prefix=settings.prefix,
                    access_key=settings.access_key,
                    secret_key=settings.secret_key,
                    region=settings.region or "us-east-1",
                    protection=_protection(spec),
                )
            )
        )
    if isinstance(settings, SftpSettings):
        from comet.agent.storage.sftp import SftpConfig, SftpStorage

        if not settings.host_key:
            # Accepting whatever key the server presents would hand the vault's data
            # (and the login) to anyone who can intercept the connection.
            # Vaults saved before host keys were pinned land here: say which and how.
            raise VaultError(
                f"SFTP vault {spec.name!r} has no pinned host key for {settings.host}:"
                f"{settings.port or 22}{_presented_key(settings)}, so it is not used (vaults"
                " saved before Comet pinned SFTP host keys, or imported, have none). Check the"
                " fingerprint with the server's administrator, then run 'comet vault trust-host-key"
                f" {shlex.quote(spec.name)}' to pin it"
            )
        key_path = None
        if settings.private_key:
            key_path = _private_key_file(key_dir, settings.private_key)
        return RetryingStorage(
            SftpStorage(
                SftpConfig(
                    host=settings.host,
                    port=settings.port or 22,
                    username=settings.username,
                    password=settings.password or None,
                    private_key_path=key_path,
                    root=settings.path or ".",
                    host_key=settings.host_key or None,
                )
            )
        )
    if isinstance(settings, CometSettings):
        if not (settings.bucket_id and settings.bucket_key):
            raise VaultError(f"Storage Vault {spec.name!r} has no Comet Server bucket yet")
        if not server_url:
            raise VaultError(
                f"Storage Vault {spec.name!r} is on the Comet Server: log in to open it"
            )
        from comet.agent.storage.comet import CometStorage, CometStorageConfig

        return RetryingStorage(
            CometStorage(
                CometStorageConfig(
                    server_url, settings.bucket_id, settings.bucket_key, delete_grant=delete_grant
                )
            )
        )
    raise VaultError(f"Storage Vault {spec.name!r}: this agent cannot open {spec.type.name} vaults")


def _protection(spec: VaultSpec) -> Protection | None:
    if not spec.immutable_seconds:
        return None
    return Protection(spec.immutable_seconds, spec.object_lock_mode)


def _presented_key(settings: SftpSettings) -> str:
    """``" (the server presents SHA256:…)"``, for a person deciding what to pin; empty
    when the server cannot be reached."""
    from comet.agent.storage.base import StorageError
    from comet.agent.storage.sftp import describe_host_key, fetch_host_key

    try:
        seen = fetch_host_key(settings.host, settings.port or 22, timeout=5.0)
    except StorageError:
        return ""
    return f" (the server presents {describe_host_key(seen)})"


def _private_key_file(key_dir: Path, pem: str) -> Path:
    """paramiko reads keys from files: keep a private copy in the state dir."""
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = key_dir / (hashlib.sha256(pem.encode()).hexdigest()[:16] + ".key")
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pem)
    return path


def open_repository(
    spec: VaultSpec,
    wrap_key: bytes,
    *,
    key_dir: Path,
    server_url: str = "",
    bandwidth_bps: int = 0,
    delete_grant: str = "",
    wrap: Callable[[Storage], Storage] | None = None,
    cancel: CancelToken | None = None,
    index_only: BlobType | None = None,
) -> Repository:
    """The vault's repository; ``bandwidth_bps`` caps uploads and downloads; ``wrap``
    (for example a meter) wraps the storage outermost; ``delete_grant`` lets an
    immutable server bucket delete (retention an administrator started); after
    ``cancel`` fires, transfers stop (also while waiting for bandwidth);
    ``index_only`` as for ``Repository.open``."""
    storage = open_storage(spec, key_dir=key_dir, server_url=server_url, delete_grant=delete_grant)
    if bandwidth_bps:
        storage = RateLimitedStorage(
            storage,
            upload_bps=bandwidth_bps,
            download_bps=bandwidth_bps,
            sleep=cancel.sleep if cancel is not None else time.sleep,
        )
    if cancel is not None:
        storage = CancellableStorage(storage, cancel)
    if wrap is not None:
        storage = wrap(storage)
    repo = Repository.open(
        storage,
        unwrap_vault_key(spec, wrap_key),
        now_ns=system_clock().time_ns,
        lock_policy=lock_policy(),
        index_only=index_only,
    )
    repo.label = spec.name
    return repo


def lock_policy() -> LockPolicy:
    """Lock and prune periods: the format's defaults, shortened only by tests."""
    timing = lock_timing_from_env()
    defaults = LockPolicy()
    return LockPolicy(
        stale_after_ns=int(timing.get("stale", defaults.stale_after_ns / 1e9) * 1e9),
        refresh_every_ns=int(timing.get("refresh", defaults.refresh_every_ns / 1e9) * 1e9),
        prune_grace_ns=int(timing.get("grace", defaults.prune_grace_ns / 1e9) * 1e9),
        hostname=lock_hostname_from_env() or defaults.hostname,
    )


def init_repository(
    spec: VaultSpec, vault_key: bytes, *, key_dir: Path, server_url: str = ""
) -> None:
    """Create the repository in a new vault (fails clearly if one exists there)."""
    storage = open_storage(spec, key_dir=key_dir, server_url=server_url)
    try:
        Repository.init(storage, vault_key).close()
    finally:
        storage.close()


def find_vault_key(
    spec: VaultSpec, candidates: list[bytes], *, key_dir: Path, server_url: str = ""
) -> bytes:
    """The one of ``candidates`` (the account's vault keys) that opens the existing
    repository in ``spec``'s storage. Raises VaultError when the storage holds no
    repository or none of the keys opens it."""
    from comet.agent.errors import RepositoryNotFoundError, WrongVaultKeyError

    storage = open_storage(spec, key_dir=key_dir, server_url=server_url)
    try:
        for vault_key in candidates:
            try:
                Repository.open(storage, vault_key, lock_policy=lock_policy())
            except WrongVaultKeyError:
                continue
            except RepositoryNotFoundError:
                raise VaultError(
                    f"there is no Comet repository at {spec.name!r}'s location to attach;"
                    " add the vault without --attach to create one"
                ) from None
            return vault_key
    finally:
        storage.close()
    raise VaultError(
        f"the repository at {spec.name!r}'s location was not created by this account:"
        f" none of its {len(candidates)} vault keys opens it. Log in as the account that"
        " created it, or add a new vault without --attach"
    )
