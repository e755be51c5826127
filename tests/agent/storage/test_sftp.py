"""SftpStorage beyond the shared contract: login, host keys, dropped connections."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncssh
import paramiko
import pytest

from comet.agent.storage.base import StorageError, TransientStorageError
from comet.agent.storage.retry import RetryingStorage
from comet.agent.storage.sftp import (
    HostKeyError,
    SftpConfig,
    SftpStorage,
    fetch_host_key,
    host_key_fingerprint,
    parse_host_key_pin,
)
from comet.agent.vaults import SftpSettings, VaultError, VaultSpec, VaultType, open_storage
from tests.fixtures.moto import free_port
from tests.fixtures.processes import BIN, AgentProcess
from tests.fixtures.sftp import SftpTestServer

pytestmark = pytest.mark.timeout(120)

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture
def own_sftp_server(tmp_path: Path) -> Iterator[SftpTestServer]:
    """A server of this test's own, free to change its host key."""
    server = SftpTestServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


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
    storage = SftpStorage(replace(sftp_config, host_key=OTHER_KEY))
    with pytest.raises(StorageError, match="host key") as info:
        storage.put("k", b"v")
    assert not isinstance(info.value, TransientStorageError)
    assert storage.seen_host_key is not None and storage.seen_host_key != OTHER_KEY


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


# ---------------------------------------------------------------- host key pinning


def test_fingerprints_are_openssh_sha256(sftp_server: SftpTestServer) -> None:
    expected = asyncssh.import_public_key(sftp_server.host_key).get_fingerprint("sha256")
    assert host_key_fingerprint(sftp_server.host_key) == expected
    assert fetch_host_key(sftp_server.host, sftp_server.port) == sftp_server.host_key


@pytest.mark.parametrize(
    "form", ["fingerprint", "key", "known_hosts", "known_hosts_port", "marker"]
)
def test_a_pin_is_read_from_every_usual_form(sftp_server: SftpTestServer, form: str) -> None:
    key = sftp_server.host_key
    given = {
        "fingerprint": host_key_fingerprint(key),
        "key": key,
        "known_hosts": f"backup.example.org,10.0.0.5 {key} root@backup",
        "known_hosts_port": f"[127.0.0.1]:{sftp_server.port} {key}",
        "marker": f"@revoked * {key}",
    }[form]
    pin = parse_host_key_pin(given)
    assert pin == (host_key_fingerprint(key) if form == "fingerprint" else key)


@pytest.mark.parametrize(
    "given", ["SHA256:short", "MD5:aa:bb", "ssh-ed25519", "example.org ssh-ed25519 !!notbase64"]
)
def test_an_unreadable_pin_is_refused(given: str) -> None:
    with pytest.raises(HostKeyError):
        parse_host_key_pin(given)


@pytest.mark.parametrize("pinned_as", ["key", "fingerprint"])
def test_a_changed_host_key_is_refused_naming_both_fingerprints(
    own_sftp_server: SftpTestServer, pinned_as: str
) -> None:
    server = own_sftp_server
    username, _ = server.add_user(password="pw")
    old = server.host_key
    pin = old if pinned_as == "key" else host_key_fingerprint(old)
    config = SftpConfig(
        host=server.host, port=server.port, username=username, password="pw", root="/v",
        host_key=pin, timeout=5.0,
    )  # fmt: skip
    storage = RetryingStorage(SftpStorage(config))
    storage.put("k", b"v")
    new = server.restart_with_new_host_key()
    started = time.monotonic()
    with pytest.raises(HostKeyError) as info:
        storage.get("k")  # the old connection is gone; the new one meets the new key
    message = str(info.value)
    assert host_key_fingerprint(old) in message and host_key_fingerprint(new) in message
    assert "changed" in message
    assert time.monotonic() - started < 5  # refused at once, not retried
    assert SftpStorage(replace(config, host_key=new)).get("k") == b"v"


# ---------------------------------------------------------------- comet vault add --type sftp


def vault_add(agent: AgentProcess, server: SftpTestServer, name: str, *extra: str) -> list[str]:
    username, _ = server.add_user(password="pw")
    return [
        str(BIN / "comet"), "--socket", str(agent.socket), "vault", "add", name,
        "--type", "sftp", "--host", server.host, "--port", str(server.port),
        "--user", username, "--path", "/vault", "--key", str(server.client_key_path), *extra,
    ]  # fmt: skip


def run_on_tty(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run ``args`` with a terminal as stdin/stdout/stderr; answer the trust prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if not answered and b"Trust this host key?" in output:
            os.write(master, answer)
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(master)
    return proc.wait(timeout=30), output.decode(errors="replace")


def test_vault_add_pins_the_host_key_shown_confirmed_or_given(
    alice: AgentProcess, own_sftp_server: SftpTestServer
) -> None:
    server = own_sftp_server
    fingerprint = host_key_fingerprint(server.host_key)

    # Not on a terminal and no --host-key: one line showing the fingerprint and the flag.
    refused = subprocess.run(
        vault_add(alice, server, "blind"), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert f"--host-key {fingerprint}" in refused.stderr

    # A different key given: refused, naming both.
    wrong = subprocess.run(
        vault_add(alice, server, "wrong", "--host-key", OTHER_KEY),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert fingerprint in wrong.stderr and host_key_fingerprint(OTHER_KEY) in wrong.stderr

    # Given as a fingerprint, or as a known_hosts line: added.
    for name, given in (
        ("by-fingerprint", fingerprint),
        ("by-known-hosts", f"[{server.host}]:{server.port} {server.host_key} comment"),
    ):
        added = subprocess.run(
            vault_add(alice, server, name, "--host-key", given),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

    # On a terminal: shown and confirmed, or declined.
    code, output = run_on_tty(vault_add(alice, server, "confirmed"), b"y\n")
    assert code == 0 and fingerprint in output, output
    code, output = run_on_tty(vault_add(alice, server, "declined"), b"n\n")
    assert code != 0 and "not trusted" in output, output
    names = {v["name"] for v in alice.comet("vault", "list", "--json").json()}
    assert names == {"by-fingerprint", "by-known-hosts", "confirmed"}

    # The server's key changes: every pinned vault refuses it, naming both keys.
    old = fingerprint
    new = host_key_fingerprint(server.restart_with_new_host_key())
    for name in ("by-fingerprint", "by-known-hosts", "confirmed"):
        result = alice.comet("snapshots", "--vault", name, check=False)
        assert result.returncode != 0
        assert old in result.stderr and new in result.stderr, result.stderr


def test_the_agent_opens_no_sftp_vault_without_a_pinned_key(
    sftp_config: SftpConfig, sftp_server: SftpTestServer, tmp_path: Path
) -> None:
    def spec(host_key: str) -> VaultSpec:
        settings = SftpSettings(
            host=sftp_config.host, port=sftp_config.port, username=sftp_config.username,
            path="/vault", password="s3cret", host_key=host_key,
        )  # fmt: skip
        return VaultSpec("v1", "offsite", VaultType.SFTP, settings)

    with pytest.raises(VaultError, match="no pinned host key") as info:
        open_storage(spec(""), key_dir=tmp_path)
    assert host_key_fingerprint(sftp_server.host_key) in str(info.value)
    storage = open_storage(spec(host_key_fingerprint(sftp_server.host_key)), key_dir=tmp_path)
    storage.put("k", b"pinned by fingerprint")
    assert storage.get("k") == b"pinned by fingerprint"


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
