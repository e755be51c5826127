"""Two-factor (TOTP) enrolment and login, and password changes and resets."""

from __future__ import annotations

from datetime import timedelta

import grpc
import psycopg
import pytest

from comet.agent.credentials import FLOOR_LOG2_N
from comet.server import totp
from comet.server.rpc.errors import ERROR_CODE_KEY
from comet.server.store.accounts import Role
from comet.v1 import admin_pb2, common_pb2, control_pb2
from tests.server.conftest import KDF, FakeClock, RpcServer, Session, auth_key, expect_error


def login(name: str, code: str = "", password: str = "password-1") -> control_pb2.LoginRequest:
    return control_pb2.LoginRequest(
        username=name, auth_key=auth_key(password), totp_code=code, admin_session=True
    )


async def enrol(rpc: RpcServer, who: Session, clock: FakeClock) -> str:
    begun = await rpc.auth.BeginTotpEnrolment(
        control_pb2.BeginTotpEnrolmentRequest(), metadata=who.metadata
    )
    assert begun.otpauth_uri.startswith("otpauth://totp/Comet:")
    assert f"secret={begun.secret}" in begun.otpauth_uri
    await expect_error(
        rpc.auth.ConfirmTotpEnrolment(
            control_pb2.ConfirmTotpEnrolmentRequest(code="000000"), metadata=who.metadata
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "wrong two-factor code",
    )
    await rpc.auth.ConfirmTotpEnrolment(
        control_pb2.ConfirmTotpEnrolmentRequest(code=totp.code_at(begun.secret, clock.now())),
        metadata=who.metadata,
    )
    return begun.secret


async def test_enrolled_accounts_need_a_code_and_a_wrong_one_counts_as_a_failed_login(
    rpc: RpcServer, clock: FakeClock, database_url: str
) -> None:
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    root = await rpc.session("root")
    # Pending enrolment changes nothing until confirmed.
    await rpc.auth.BeginTotpEnrolment(
        control_pb2.BeginTotpEnrolmentRequest(), metadata=root.metadata
    )
    await rpc.auth.Login(login("root"))
    secret = await enrol(rpc, root, clock)

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT totp_secret FROM users WHERE username = 'root'").fetchone()
    assert row is not None and row[0].startswith("enc1:") and secret not in row[0]

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc.auth.Login(login("root"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert info.value.details() == "two-factor code required"
    trailers = dict(info.value.trailing_metadata() or ())
    assert trailers[ERROR_CODE_KEY] == "totp_required"  # a stable code clients prompt on

    clock.advance(seconds=30)
    await rpc.auth.Login(login("root", totp.code_at(secret, clock.now())))
    # A code works once.
    await expect_error(
        rpc.auth.Login(login("root", totp.code_at(secret, clock.now()))),
        grpc.StatusCode.UNAUTHENTICATED,
        "wrong two-factor code",
    )
    # Wrong codes are failed logins: after three the account is throttled.
    for _ in range(2):
        await expect_error(
            rpc.auth.Login(login("root", "123456")),
            grpc.StatusCode.UNAUTHENTICATED,
            "wrong two-factor code",
        )
    # (inside the first back-off, 30 s after the latest failure)
    clock.advance(seconds=20)
    await expect_error(
        rpc.auth.Login(login("root", totp.code_at(secret, clock.now()))),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too many failed attempts",
    )
    # The password is still checked first: a wrong one never reveals the 2FA prompt.
    clock.advance(minutes=11)
    await expect_error(
        rpc.auth.Login(login("root", password="wrong-password")),
        grpc.StatusCode.UNAUTHENTICATED,
        "wrong username or password",
    )


async def test_totp_can_be_disabled_with_a_current_code(rpc: RpcServer, clock: FakeClock) -> None:
    await rpc.add_user("alice")
    alice = await rpc.device("alice")
    secret = await enrol(rpc, alice, clock)
    await expect_error(
        rpc.auth.BeginTotpEnrolment(
            control_pb2.BeginTotpEnrolmentRequest(), metadata=alice.metadata
        ),
        grpc.StatusCode.ABORTED,
        "already enabled",
    )
    users = await rpc.stores.accounts.list_users()
    assert users[0].totp_enabled
    await expect_error(
        rpc.auth.DisableTotp(
            control_pb2.DisableTotpRequest(code="999999"), metadata=alice.metadata
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "wrong two-factor code",
    )
    clock.advance(seconds=30)
    await rpc.auth.DisableTotp(
        control_pb2.DisableTotpRequest(code=totp.code_at(secret, clock.now())),
        metadata=alice.metadata,
    )
    await rpc.auth.Login(control_pb2.LoginRequest(username="alice", auth_key=auth_key()))


def test_codes_from_the_neighbouring_steps_are_accepted() -> None:
    from datetime import UTC, datetime

    secret = totp.new_secret()
    now = datetime(2026, 1, 5, 9, 0, 15, tzinfo=UTC)
    for drift in (-30, 0, 30):
        assert totp.matching_step(secret, totp.code_at(secret, now + timedelta(seconds=drift)), now)
    assert (
        totp.matching_step(secret, totp.code_at(secret, now + timedelta(seconds=90)), now) is None
    )


# ---------------------------------------------------------------- passwords


async def with_vault(rpc: RpcServer, who: Session, *, recovery: bool) -> str:
    profile = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=who.metadata)
    vault = common_pb2.StorageVault(
        name="v", type=common_pb2.VAULT_TYPE_LOCAL, wrapped_vault_key=b"old-wrap"
    )
    if recovery:
        vault.recovery_wrapped_vault_key = b"recovery-wrap"
    profile.vaults.append(vault)
    profile.recovery_enabled = recovery
    profile.settings.allow_admin_reset_password = recovery
    profile = await rpc.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=profile), metadata=who.metadata
    )
    return profile.vaults[0].vault_id


async def test_change_password_replaces_the_login_and_the_wrapped_keys_together(
    rpc: RpcServer,
) -> None:
    await rpc.add_user("alice")
    alice = await rpc.device("alice")
    vault_id = await with_vault(rpc, alice, recovery=False)
    new_kdf = control_pb2.KdfParams(
        algorithm=KDF.algorithm, salt=KDF.salt, log2_n=FLOOR_LOG2_N, r=KDF.r, p=KDF.p
    )
    # Every wrapped key must be re-wrapped, or nothing changes.
    await expect_error(
        rpc.auth.ChangePassword(
            control_pb2.ChangePasswordRequest(
                new_auth_key=auth_key("password-2"), new_kdf=new_kdf, current_auth_key=auth_key()
            ),
            metadata=alice.metadata,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "was not re-wrapped",
    )
    # A device credential alone is not enough: the current password is checked.
    await expect_error(
        rpc.auth.ChangePassword(
            control_pb2.ChangePasswordRequest(
                new_auth_key=auth_key("password-2"),
                new_kdf=new_kdf,
                rewrapped_vault_keys={vault_id: b"new-wrap"},
                current_auth_key=auth_key("not-the-password"),
            ),
            metadata=alice.metadata,
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "current password is wrong",
    )
    await rpc.auth.Login(control_pb2.LoginRequest(username="alice", auth_key=auth_key()))
    alice = await rpc.device("alice")
    await rpc.auth.ChangePassword(
        control_pb2.ChangePasswordRequest(
            new_auth_key=auth_key("password-2"),
            new_kdf=new_kdf,
            rewrapped_vault_keys={vault_id: b"new-wrap"},
            current_auth_key=auth_key(),
        ),
        metadata=alice.metadata,
    )
    await expect_error(
        rpc.auth.Login(control_pb2.LoginRequest(username="alice", auth_key=auth_key())),
        grpc.StatusCode.UNAUTHENTICATED,
        "wrong username or password",
    )
    await rpc.auth.Login(
        control_pb2.LoginRequest(username="alice", auth_key=auth_key("password-2"))
    )
    profile = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=alice.metadata)
    assert profile.vaults[0].wrapped_vault_key == b"new-wrap"


async def test_admin_reset_needs_the_users_consent_or_force_and_never_claims_recovery(
    rpc: RpcServer,
) -> None:
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    root = await rpc.session("root")
    await rpc.add_user("alice")
    await rpc.add_user("bob")
    await with_vault(rpc, await rpc.device("alice"), recovery=True)
    await with_vault(rpc, await rpc.device("bob"), recovery=False)

    def reset(name: str, *, force: bool = False) -> admin_pb2.ResetPasswordRequest:
        return admin_pb2.ResetPasswordRequest(
            username=name,
            kdf=control_pb2.KdfParams(
                algorithm=KDF.algorithm, salt=KDF.salt, log2_n=FLOOR_LOG2_N, r=KDF.r, p=KDF.p
            ),
            auth_key=auth_key("new-password"),
            force=force,
        )

    # No recovery exists, whatever the profile claims: the reply never says the data
    # stays readable.
    reply = await rpc.admin.ResetPassword(reset("alice"), metadata=root.metadata)
    assert reply.data_kept_readable is False
    await rpc.auth.Login(
        control_pb2.LoginRequest(username="alice", auth_key=auth_key("new-password"))
    )

    await expect_error(
        rpc.admin.ResetPassword(reset("bob"), metadata=root.metadata),
        grpc.StatusCode.PERMISSION_DENIED,
        "has not allowed administrators to reset their password",
    )
    reply = await rpc.admin.ResetPassword(reset("bob", force=True), metadata=root.metadata)
    assert reply.data_kept_readable is False
    audit = await rpc.admin.ListAudit(
        admin_pb2.ListAuditRequest(action="user.reset_password"), metadata=root.metadata
    )
    assert [(e.target, e.success) for e in audit.events] == [
        ("bob", True),
        ("bob", False),
        ("alice", True),
    ]
