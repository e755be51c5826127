"""``SftpStorage``: a vault in a directory on an SFTP server, over paramiko.

One SSH connection with one SFTP channel, used under a lock; a dropped connection turns
the call in flight into a TransientStorageError and the next call connects again.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import posixpath
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import TypeVar

import paramiko
from paramiko.sftp import CMD_EXTENDED

from comet.agent.storage.base import (
    TEMP_MARKER,
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    TransientStorageError,
    check_key,
    check_prefix,
    check_range,
    is_temp_name,
)

_T = TypeVar("_T")

_FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
_KEY_TYPE_RE = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)$")

# Below this size a ranged read is one or two requests; prefetching would only add a thread.
_PREFETCH_MIN = 256 * 1024
# Where the old object waits while a server without posix-rename replaces it.
_ASIDE = f"{TEMP_MARKER}old"


def _storage_ns(attrs: paramiko.SFTPAttributes) -> int | None:
    """The server's mtime of a file (whole seconds) in ns."""
    return None if attrs.st_mtime is None else int(attrs.st_mtime) * 10**9


@dataclass(frozen=True, kw_only=True)
class SftpConfig:
    """Where the vault lives and how to log in.

    ``root`` is the vault directory on the server (absolute, or relative to the login
    directory). ``host_key`` is the server's public key as ``"<type> <base64>"`` (the
    known_hosts form without the host name); when None any key is accepted and the one
    seen is left in ``SftpStorage.seen_host_key`` for the caller to pin.
    """

    host: str
    port: int = 22
    username: str
    password: str | None = field(default=None, repr=False)
    private_key_path: Path | None = None
    private_key_passphrase: str | None = field(default=None, repr=False)
    root: str = "."
    host_key: str | None = None
    timeout: float = 15.0


def format_host_key(key: paramiko.PKey) -> str:
    """The ``"<type> <base64>"`` form SftpConfig.host_key expects."""
    return f"{key.get_name()} {key.get_base64()}"


class HostKeyError(StorageError):
    """The server's host key is not the pinned one, or a pin cannot be read. Never
    transient: retrying would only connect to the same impostor again."""

    code = "storage.host_key"


def host_key_fingerprint(host_key: str) -> str:
    """OpenSSH's ``SHA256:<base64, unpadded>`` fingerprint of a ``"<type> <base64>"`` key
    (what ``ssh-keygen -lf`` and ssh's own prompts show)."""
    blob = host_key.split()[-1]
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as e:
        raise HostKeyError(f"not an SSH public key: {host_key!r}") from e
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def describe_host_key(host_key: str) -> str:
    """``"SHA256:… (ssh-ed25519)"`` for messages."""
    if host_key.startswith("SHA256:"):
        return host_key
    parts = host_key.split()
    kind = f" ({parts[0]})" if len(parts) == 2 else ""
    return host_key_fingerprint(host_key) + kind


def parse_host_key_pin(text: str) -> str:
    """A pin as a person may give it: ``SHA256:…``, ``"<type> <base64>"``, or a
    known_hosts line (``[marker] hosts <type> <base64> [comment]``). Returns
    ``SHA256:…`` or ``"<type> <base64>"``; HostKeyError when it is none of these."""
    text = text.strip()
    if text.startswith("SHA256:"):
        if not _FINGERPRINT_RE.match(text):
            raise HostKeyError(f"not a SHA256 host key fingerprint: {text!r}")
        return text
    parts = text.split()
    for i, part in enumerate(parts[:-1]):
        if _KEY_TYPE_RE.match(part):
            key = f"{part} {parts[i + 1]}"
            host_key_fingerprint(key)  # the blob must decode
            return key
    raise HostKeyError(
        f"cannot read a host key from {text!r}: give SHA256:<fingerprint>, '<type> <base64>'"
        " or a known_hosts line"
    )


def host_key_matches(pinned: str, seen: str) -> bool:
    """Whether ``seen`` (``"<type> <base64>"``) is the pinned key: a fingerprint, a
    ``"<type> <base64>"`` value (a trailing comment allowed), or the bare base64."""
    if pinned.startswith("SHA256:"):
        return hmac.compare_digest(pinned, host_key_fingerprint(seen))
    pinned_parts = pinned.split()
    seen_type, seen_blob = seen.split()
    if len(pinned_parts) == 1:
        return pinned_parts[0] == seen_blob
    return pinned_parts[0] == seen_type and pinned_parts[1] == seen_blob


def fetch_host_key(host: str, port: int = 22, *, timeout: float = 15.0) -> str:
    """The host key ``host:port`` presents (``"<type> <base64>"``), without logging in:
    what ``vault add`` shows a person before pinning it."""
    where = f"sftp://{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise TransientStorageError(f"cannot connect to {where}: {e}") from e
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        return format_host_key(transport.get_remote_server_key())
    except (paramiko.SSHException, EOFError, OSError) as e:
        raise TransientStorageError(f"cannot connect to {where}: {e}") from e
    finally:
        transport.close()


class SftpStorage:
    """Objects as files below ``config.root`` on an SFTP server. Puts write a temp file
    and rename it over the target (``posix-rename`` when the server supports it)."""

    def __init__(self, config: SftpConfig) -> None:
        if config.password is None and config.private_key_path is None:
            raise StorageError(
                f"SFTP vault {config.username}@{config.host} needs a password or a private key"
            )
        self.config = config
        self.seen_host_key: str | None = None
        self._root = config.root.rstrip("/") or ("/" if config.root.startswith("/") else ".")
        self._lock = threading.Lock()
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._pkey: paramiko.PKey | None = None
        # Whether the server implements fsync@openssh.com (None: not tried yet).
        self._can_fsync: bool | None = None

    # -- protocol ---------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        head, name = posixpath.split(path)
        tmp = posixpath.join(head, f"{name}{TEMP_MARKER}{secrets.token_hex(8)}")

        def op(sftp: paramiko.SFTPClient) -> None:
            try:
                try:
                    self._write(sftp, tmp, data)
                except FileNotFoundError:
                    self._makedirs(sftp, head)
                    self._write(sftp, tmp, data)
                self._rename(sftp, tmp, path)
            except FileNotFoundError as e:
                raise StorageError(f"cannot write {key!r}: {e}") from e
            except BaseException:
                # Best effort: the connection may be gone.
                with contextlib.suppress(Exception):
                    sftp.remove(tmp)
                raise

        self._run("write", key, op)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)

        def op(sftp: paramiko.SFTPClient) -> bytes:
            try:
                f = self._open_or_aside(sftp, path)
            except OSError:
                # A directory is not an object, but servers refuse to open one with
                # an error other than "no such file".
                if not S_ISREG(sftp.stat(path).st_mode or 0):
                    raise ObjectNotFoundError(f"object {key!r} does not exist") from None
                raise
            with f:
                count = check_range(key, f.stat().st_size or 0, offset, length)
                f.seek(offset)
                if count >= _PREFETCH_MIN:
                    f.prefetch(offset + count)
                data = f.read(count)
            if len(data) != count:
                raise StorageError(f"short read of {key!r}: wanted {count} bytes, got {len(data)}")
            return data

        return self._run("read", key, op)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)

        def op(sftp: paramiko.SFTPClient) -> paramiko.SFTPAttributes:
            try:
                return sftp.stat(path)
            except FileNotFoundError:
                return sftp.stat(path + _ASIDE)  # a replace was interrupted half-way

        attrs = self._run("stat", key, op)
        if not S_ISREG(attrs.st_mode or 0):
            raise ObjectNotFoundError(f"object {key!r} does not exist")
        return ObjectInfo(key, attrs.st_size or 0, _storage_ns(attrs))

    def delete(self, key: str) -> None:
        path = self._path(key)

        def op(sftp: paramiko.SFTPClient) -> None:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(path)
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(path + _ASIDE)

        self._run("delete", key, op)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        head, _, _ = prefix.rpartition("/")
        start = posixpath.join(self._root, head) if head else self._root
        return self._walk(start, f"{head}/" if head else "", prefix)

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        def op(sftp: paramiko.SFTPClient) -> tuple[str, ...]:
            removed: list[str] = []
            pending = [self._root]
            while pending:
                directory = pending.pop()
                try:
                    entries = sftp.listdir_attr(directory)
                except FileNotFoundError:
                    continue
                for attrs in entries:
                    path = posixpath.join(directory, attrs.filename)
                    if S_ISDIR(attrs.st_mode or 0):
                        pending.append(path)
                    elif (
                        is_temp_name(attrs.filename)
                        and not attrs.filename.endswith(_ASIDE)
                        and (_storage_ns(attrs) or before_ns) < before_ns
                    ):
                        with contextlib.suppress(FileNotFoundError):
                            sftp.remove(path)
                        removed.append(posixpath.relpath(path, self._root))
            return tuple(removed)

        return self._run("clean", "/", op)

    def close(self) -> None:
        with self._lock:
            self._drop_locked()

    # -- helpers ----------------------------------------------------------------------

    def connect(self) -> None:
        """Connect now rather than on the first call (to check credentials, or to learn
        ``seen_host_key``). Raises StorageError like any other call."""
        self._run("connect to", self._root, lambda sftp: None)

    def _path(self, key: str) -> str:
        return posixpath.join(self._root, check_key(key))

    def _walk(self, directory: str, dir_key: str, prefix: str) -> Iterator[ObjectInfo]:
        def op(sftp: paramiko.SFTPClient) -> list[paramiko.SFTPAttributes]:
            try:
                return sftp.listdir_attr(directory)
            except FileNotFoundError:
                return []

        for attrs in self._run("list", dir_key or "/", op):
            name = attrs.filename
            if is_temp_name(name):
                continue
            key = dir_key + name
            mode = attrs.st_mode or 0
            if S_ISDIR(mode):
                if key.startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(posixpath.join(directory, name), key + "/", prefix)
            elif S_ISREG(mode) and key.startswith(prefix):
                yield ObjectInfo(key, attrs.st_size or 0, _storage_ns(attrs))

    def _write(self, sftp: paramiko.SFTPClient, path: str, data: bytes) -> None:
        with sftp.open(path, "wb") as f:
            f.set_pipelined(True)
            f.write(data)
            self._fsync(sftp, f)

    def _fsync(self, sftp: paramiko.SFTPClient, f: paramiko.SFTPFile) -> None:
        """Make the written data durable on the server before it is renamed into place,
        with OpenSSH's fsync@openssh.com where the server offers it."""
        if self._can_fsync is False:
            return
        f.flush()
        try:
            sftp._request(CMD_EXTENDED, "fsync@openssh.com", f.handle)  # type: ignore[attr-defined]
            self._can_fsync = True
        except OSError:
            if self._can_fsync or not self._alive():
                raise
            self._can_fsync = False  # not offered: the server's own write-back applies

    @staticmethod
    def _open_or_aside(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPFile:
        try:
            return sftp.open(path, "rb")
        except FileNotFoundError:
            return sftp.open(path + _ASIDE, "rb")  # a replace was interrupted half-way

    def _rename(self, sftp: paramiko.SFTPClient, tmp: str, path: str) -> None:
        try:
            sftp.posix_rename(tmp, path)
            return
        except OSError:
            if not self._alive():
                raise
        # The server lacks the posix-rename extension and plain SFTP rename refuses to
        # replace a file. Move the old object aside first (reads fall back to it), so at
        # every moment the old or the new object can be read.
        try:
            sftp.rename(tmp, path)
        except OSError:
            if not self._alive():
                raise
        else:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(path + _ASIDE)  # left by a replace cut short
            return
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(path + _ASIDE)
        with contextlib.suppress(FileNotFoundError):
            sftp.rename(path, path + _ASIDE)
        sftp.rename(tmp, path)
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(path + _ASIDE)

    @staticmethod
    def _makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
        parts = [p for p in directory.split("/") if p]
        current = "/" if directory.startswith("/") else ""
        for part in parts:
            current = posixpath.join(current, part) if current else part
            try:
                sftp.stat(current)
                continue
            except FileNotFoundError:
                pass
            try:
                sftp.mkdir(current)
            except OSError:
                sftp.stat(current)  # another writer made it meanwhile; else this raises

    def _alive(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def _run(self, action: str, key: str, op: Callable[[paramiko.SFTPClient], _T]) -> _T:
        """Run ``op`` on the SFTP channel under the lock, converting its errors."""
        where = f"sftp://{self.config.username}@{self.config.host}:{self.config.port}"
        with self._lock:
            sftp = self._connect_locked(where)
            try:
                return op(sftp)
            except FileNotFoundError as e:
                raise ObjectNotFoundError(f"object {key!r} does not exist") from e
            except (EOFError, paramiko.SSHException, TimeoutError, ConnectionError) as e:
                self._drop_locked()
                raise TransientStorageError(
                    f"cannot {action} {key!r}: connection to {where} lost ({e})"
                ) from e
            except PermissionError as e:
                raise StorageError(
                    f"cannot {action} {key!r} on {where}: permission denied;"
                    f" check that {self.config.username!r} may write to {self._root!r}"
                ) from e
            except OSError as e:
                if not self._alive():
                    self._drop_locked()
                    raise TransientStorageError(
                        f"cannot {action} {key!r}: connection to {where} lost ({e})"
                    ) from e
                raise StorageError(f"cannot {action} {key!r} on {where}: {e}") from e

    def _connect_locked(self, where: str) -> paramiko.SFTPClient:
        if self._sftp is not None and self._alive():
            return self._sftp
        self._drop_locked()
        cfg = self.config
        pkey = self._load_key()
        try:
            sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout)
        except OSError as e:
            raise TransientStorageError(f"cannot connect to {where}: {e}") from e
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=cfg.timeout)
            seen = format_host_key(transport.get_remote_server_key())
            self.seen_host_key = seen
            if cfg.host_key is not None and not host_key_matches(cfg.host_key, seen):
                raise HostKeyError(
                    f"the host key of {where} changed: it is now {describe_host_key(seen)}"
                    f" but the vault pinned {describe_host_key(cfg.host_key)}; refusing to"
                    " connect. If the server was reinstalled, check the new key with its"
                    " administrator and pin it again; otherwise someone may be intercepting"
                    " the connection"
                )
            if pkey is not None:
                transport.auth_publickey(cfg.username, pkey)
            else:
                assert cfg.password is not None  # checked in __init__
                transport.auth_password(cfg.username, cfg.password)
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise paramiko.SSHException("the server refused the sftp subsystem")
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(cfg.timeout)
        except paramiko.AuthenticationException as e:
            transport.close()
            raise StorageError(
                f"the SFTP server {where} refused the login ({e}); check the user name,"
                " password or private key"
            ) from e
        except (paramiko.SSHException, EOFError, OSError) as e:
            transport.close()
            raise TransientStorageError(f"cannot connect to {where}: {e}") from e
        except BaseException:
            transport.close()
            raise
        self._transport, self._sftp = transport, sftp
        return sftp

    def _load_key(self) -> paramiko.PKey | None:
        path = self.config.private_key_path
        if path is None or self._pkey is not None:
            return self._pkey
        try:
            self._pkey = paramiko.PKey.from_path(path, self.config.private_key_passphrase)
        except (OSError, paramiko.SSHException, ValueError) as e:
            raise StorageError(f"cannot load the SFTP private key {path}: {e}") from e
        return self._pkey

    def _drop_locked(self) -> None:
        sftp, transport = self._sftp, self._transport
        self._sftp = self._transport = None
        if sftp is not None:
            # The connection may already be gone.
            with contextlib.suppress(Exception):
                sftp.close()
        if transport is not None:
            transport.close()
