"""SftpStorage beyond the shared contract: login, host keys, dropped connections."""

from __future__ import annotations

from dataclasses import replace

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
