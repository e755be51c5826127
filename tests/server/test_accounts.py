"""Accounts, logins, sessions and devices against a real PostgreSQL."""

from __future__ import annotations

import pytest

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server.errors import (
    AlreadyExistsError,
    AuthenticationError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
    ThrottledError,
)
from comet.server.store.accounts import AccountStore, Registration, Role
from tests.server.conftest import FakeClock

KDF = KdfParams.new(log2_n=10)


def key(password: str) -> bytes:
    return derive_login_secrets(password, KDF).auth_key


async def add(
    accounts: AccountStore, name: str, password: str = "password-1", **kw: object
) -> None:
    await accounts.create_user(name, KDF, key(password), **kw)  # type: ignore[arg-type]


async def test_prelogin_returns_the_users_kdf_and_a_stable_decoy_for_strangers(
    accounts: AccountStore,
) -> None:
    await add(accounts, "alice")
    assert await accounts.prelogin("alice") == KDF
    decoy = await accounts.prelogin("nobody")
    assert decoy == await accounts.prelogin("nobody")  # no probing by comparing answers
    assert decoy.salt != KDF.salt and len(decoy.salt) == 16


async def test_the_server_stores_no_password_and_no_auth_key(
    accounts: AccountStore, database_url: str
) -> None:
    import psycopg

    await add(accounts, "alice", "secret-password")
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT auth_hash, kdf::text FROM users").fetchone()
    assert row is not None
    assert row[0] != key("secret-password")
    assert b"secret-password" not in bytes(row[0]) and "secret-password" not in row[1]


@pytest.mark.parametrize("name", ["", "a b", "x/y", "é", "a" * 256])
async def test_bad_usernames_are_refused(accounts: AccountStore, name: str) -> None:
    with pytest.raises(InvalidRequestError, match="username"):
        await add(accounts, name)


async def test_duplicate_user_is_refused(accounts: AccountStore) -> None:
    await add(accounts, "alice")
    with pytest.raises(AlreadyExistsError):
        await add(accounts, "alice")
    await add(accounts, "Alice")  # usernames are case-sensitive


async def test_right_password_logs_in_and_registers_a_device_once(accounts: AccountStore) -> None:
    await add(accounts, "alice")
    first = await accounts.login(
        "alice",
        key("password-1"),
        source="10.0.0.1",
        admin_session=False,
        registration=Registration(name="laptop", os="linux"),
    )
    assert first.device_registered_now and first.device_id and first.device_token
    again = await accounts.login(
        "alice",
        key("password-1"),
        source="10.0.0.1",
        admin_session=False,
        device_id=first.device_id,
    )
    assert again.device_id == first.device_id and not again.device_registered_now
    # The new login rotated the device credential.
    with pytest.raises(AuthenticationError):
        await accounts.authenticate_device(first.device_token)
    principal = await accounts.authenticate_device(again.device_token)
    assert principal.device_id == first.device_id and principal.username == "alice"
    devices = await accounts.list_devices(username="alice")
    assert [d.name for d in devices] == ["laptop"]


async def test_wrong_password_is_refused_and_audited(accounts: AccountStore) -> None:
    await add(accounts, "alice")
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        await accounts.login("alice", key("password-2"), source="10.0.0.9", admin_session=False)
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        await accounts.login("nobody", key("password-1"), source="10.0.0.9", admin_session=False)
    events = await accounts.list_audit(action="login")
    assert [(e.target, e.success, e.source_address) for e in events] == [
        ("nobody", False, "10.0.0.9"),
        ("alice", False, "10.0.0.9"),
    ]


async def test_failed_logins_back_off_per_account_and_source_not_per_account(
    accounts: AccountStore, clock: FakeClock
) -> None:
    await add(accounts, "alice")
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            await accounts.login("alice", key("nope-nope"), source="10.0.0.2", admin_session=False)
    # That source must now wait, even with the right password...
    for _ in range(5):
        with pytest.raises(ThrottledError, match="try again in 30 seconds"):
            await accounts.login("alice", key("password-1"), source="10.0.0.2", admin_session=False)
    # ...but the owner elsewhere is not locked out.
    await accounts.login("alice", key("password-1"), source="10.0.0.3", admin_session=False)
    # Refused attempts were not failures: the wait did not grow, and after it the
    # source may try once more; a further failure doubles the wait.
    clock.advance(seconds=31)
    with pytest.raises(AuthenticationError):
        await accounts.login("alice", key("nope-nope"), source="10.0.0.2", admin_session=False)
    with pytest.raises(ThrottledError, match="try again in 60 seconds"):
        await accounts.login("alice", key("password-1"), source="10.0.0.2", admin_session=False)
    clock.advance(seconds=61)
    await accounts.login("alice", key("password-1"), source="10.0.0.2", admin_session=False)
    throttled = await accounts.list_audit(action="login.throttled")
    assert len(throttled) == 6 and all(e.source_address == "10.0.0.2" for e in throttled)


async def test_failed_logins_are_throttled_per_source_address(accounts: AccountStore) -> None:
    for i in range(12):
        with pytest.raises(AuthenticationError):
            await accounts.login(f"user{i}", key("x" * 8), source="10.9.9.9", admin_session=False)
    await add(accounts, "bob")
    with pytest.raises(ThrottledError):
        await accounts.login("bob", key("password-1"), source="10.9.9.9", admin_session=False)
    await accounts.login("bob", key("password-1"), source="10.1.1.1", admin_session=False)


async def test_admin_sessions_need_an_admin_role(accounts: AccountStore) -> None:
    await add(accounts, "alice")
    await add(accounts, "root", role=Role.SUPER_ADMIN)
    with pytest.raises(AuthenticationError, match="not an administrator"):
        await accounts.login("alice", key("password-1"), source="", admin_session=True)
    user = await accounts.login("alice", key("password-1"), source="", admin_session=False)
    with pytest.raises(AuthenticationError, match="administrator session"):
        await accounts.authenticate_session(user.session_token, admin=True)
    admin = await accounts.login("root", key("password-1"), source="", admin_session=True)
    principal = await accounts.authenticate_session(admin.session_token, admin=True)
    assert principal.role is Role.SUPER_ADMIN


async def test_sessions_expire_and_can_be_revoked(accounts: AccountStore, clock: FakeClock) -> None:
    await add(accounts, "root", role=Role.SUPER_ADMIN)
    first = await accounts.login("root", key("password-1"), source="", admin_session=True)
    second = await accounts.login("root", key("password-1"), source="", admin_session=True)
    await accounts.revoke_session(second.session_token)
    with pytest.raises(AuthenticationError, match="expired"):
        await accounts.authenticate_session(second.session_token, admin=True)
    clock.advance(minutes=59)
    await accounts.authenticate_session(first.session_token, admin=True)
    clock.advance(minutes=2)
    with pytest.raises(AuthenticationError, match="expired"):
        await accounts.authenticate_session(first.session_token, admin=True)
    with pytest.raises(AuthenticationError, match="unknown session"):
        await accounts.authenticate_session("forged-token", admin=True)


async def test_a_revoked_device_cannot_connect_or_log_in_again(accounts: AccountStore) -> None:
    await add(accounts, "alice")
    login = await accounts.login("alice", key("password-1"), source="", admin_session=False)
    assert await accounts.revoke_device(login.device_id) == "alice"
    with pytest.raises(AuthenticationError, match="revoked"):
        await accounts.authenticate_device(login.device_token)
    with pytest.raises(AuthenticationError, match="revoked"):
        await accounts.login(
            "alice", key("password-1"), source="", admin_session=False, device_id=login.device_id
        )
    with pytest.raises(NotFoundError):
        await accounts.revoke_device("no-such-device")


async def test_device_limit_is_enforced(accounts: AccountStore) -> None:
    await add(accounts, "alice", max_devices=1)
    await accounts.login("alice", key("password-1"), source="", admin_session=False)
    with pytest.raises(LimitExceededError, match="most allowed"):
        await accounts.login("alice", key("password-1"), source="", admin_session=False)


async def test_a_device_id_of_another_user_registers_a_new_device(accounts: AccountStore) -> None:
    await add(accounts, "alice")
    await add(accounts, "bob")
    alice = await accounts.login("alice", key("password-1"), source="", admin_session=False)
    bob = await accounts.login(
        "bob", key("password-1"), source="", admin_session=False, device_id=alice.device_id
    )
    assert bob.device_registered_now and bob.device_id != alice.device_id


async def test_online_means_connected_and_recently_seen(
    accounts: AccountStore, clock: FakeClock
) -> None:
    await add(accounts, "alice")
    login = await accounts.login("alice", key("password-1"), source="", admin_session=False)
    assert not (await accounts.list_devices(username="alice"))[0].online
    await accounts.mark_connected(login.device_id, "instance-a")
    assert (await accounts.list_devices(online_only=True))[0].device_id == login.device_id
    clock.advance(seconds=60)  # the instance died without saying so
    assert await accounts.list_devices(online_only=True) == []
    await accounts.mark_seen([login.device_id])
    assert len(await accounts.list_devices(online_only=True)) == 1
    await accounts.mark_disconnected(login.device_id, "instance-b")  # not the holder: ignored
    assert len(await accounts.list_devices(online_only=True)) == 1
    await accounts.mark_disconnected(login.device_id, "instance-a")
    assert await accounts.list_devices(online_only=True) == []


async def test_deleting_a_user_removes_their_devices(accounts: AccountStore) -> None:
    await add(accounts, "alice")
    await accounts.login("alice", key("password-1"), source="", admin_session=False)
    await accounts.delete_user("alice")
    assert await accounts.list_devices() == []
    with pytest.raises(NotFoundError):
        await accounts.delete_user("alice")


async def test_server_secrets_are_created_once_and_shared(accounts: AccountStore) -> None:
    first = await accounts.server_secret("prelogin")
    assert len(first) == 32
    assert await accounts.server_secret("prelogin") == first
    assert await accounts.server_secret("other") != first
