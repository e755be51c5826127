"""SftpStorage beyond the shared contract: login, host keys, dropped connections."""

from __future__ import annotations

from dataclasses import replace

import paramiko
import pytest

from comet.agent.storage.base import StorageError, TransientStorageError
from comet.agent.storage.sftp import SftpConfig, SftpStorage
from tests.fixtures.moto import free_port
from tests.fixtures.sftp import SftpTestServer


def test_key_login(sftp_config: SftpConfig, sftp_server: SftpTestServer) -> None:
    config = replace(sftp_config, password=None, private_key_path=sftp_server.client_key_path)
    storage = SftpStorage(config)
    storage.put("k", b"by key")
    assert storage.get("k") == b"by key"
    storage.close()


def test_wrong_password_is_not_transient(sftp_config: SftpConfig) -> None:
    storage = SftpStorage(replace(sftp_config, password="wrong"))
    with pytest.raises(StorageError, match="refused the login") as info:
        storage.stat("k")
    assert not isinstance(info.value, TransientStorageError)


def test_unknown_host_key_is_accepted_and_recorded(
    sftp_config: SftpConfig, sftp_server: SftpTestServer
) -> None:
    storage = SftpStorage(replace(sftp_config, host_key=None))
    assert storage.seen_host_key is None
    storage.connect()
    assert storage.seen_host_key == sftp_server.host_key
    storage.close()


def test_pinned_host_key_mismatch_is_refused(sftp_config: SftpConfig) -> None:
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    storage = SftpStorage(replace(sftp_config, host_key=other))
    with pytest.raises(StorageError, match="host key") as info:
        storage.put("k", b"v")
    assert not isinstance(info.value, TransientStorageError)
    assert storage.seen_host_key is not None and storage.seen_host_key != other


def test_dropped_connection_is_transient_then_reconnects(
    sftp_config: SftpConfig, sftp_server: SftpTestServer
) -> None:
    storage = SftpStorage(sftp_config)
    storage.put("k", b"v")
    sftp_server.drop_connections()
    # The drop surfaces as at most one transient failure; the next call reconnects.
    try:
        value = storage.get("k")
    except TransientStorageError:
        value = storage.get("k")
    assert value == b"v"
    storage.close()


def test_nothing_listening_is_transient(sftp_config: SftpConfig) -> None:
    storage = SftpStorage(replace(sftp_config, port=free_port()))
    with pytest.raises(TransientStorageError):
        storage.get("k")


def test_put_leaves_no_temp_files(sftp_config: SftpConfig, sftp_server: SftpTestServer) -> None:
    storage = SftpStorage(sftp_config)
    storage.put("data/aa/k", b"v")
    storage.put("data/aa/k", b"w")
    home = sftp_server.workdir / sftp_config.username
    assert [p.name for p in (home / "vault" / "data" / "aa").iterdir()] == ["k"]
    storage.close()


def test_needs_a_credential(sftp_config: SftpConfig) -> None:
    with pytest.raises(StorageError, match="password or a private key"):
        SftpStorage(replace(sftp_config, password=None))


def test_puts_are_fsynced_when_the_server_offers_it(sftp_config: SftpConfig) -> None:
    storage = SftpStorage(sftp_config)
    storage.put("data/aa/k", b"v")
    assert storage._can_fsync is True  # fsync@openssh.com answered, not skipped
    storage.close()


def test_a_replace_without_posix_rename_always_leaves_old_or_new(
    sftp_config: SftpConfig, sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without posix-rename: the old object is moved aside first and reads
    fall back to it, so a replace cut short after that still reads the old object."""
    storage = SftpStorage(sftp_config)
    storage.put("locks/a", b"old")

    def no_posix_rename(self: paramiko.SFTPClient, old: str, new: str) -> None:
        raise OSError("posix-rename@openssh.com: operation unsupported")

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", no_posix_rename)
    storage.put("locks/a", b"new")
    assert storage.get("locks/a") == b"new"
    home = sftp_server.workdir / sftp_config.username / "vault" / "locks"
    assert [p.name for p in home.iterdir()] == ["a"]
    # Cut short after the move aside: the key reads as the old object.
    (home / "a").rename(home / "a.comet-tmp~old")
    assert storage.get("locks/a") == b"new" and storage.stat("locks/a").size == 3
    assert [o.key for o in storage.list("locks/")] == []  # hidden from listings
    storage.put("locks/a", b"newer")
    assert storage.get("locks/a") == b"newer"
    assert [p.name for p in home.iterdir()] == ["a"]
    storage.close()
