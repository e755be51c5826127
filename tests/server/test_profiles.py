"""Profiles over the real AgentService: versions, item ownership, secrets at rest,
policy enforcement and policy defaults at device registration."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import grpc
import psycopg
import pytest

from comet.server.errors import DatabaseSetupError
from comet.server.secret_box import SecretBox, SecretKeyError, load_or_create_key
from comet.server.store.accounts import Role
from comet.v1 import admin_pb2, common_pb2, control_pb2
from tests.server.conftest import RpcServer, Session, auth_key, expect_error

FILES = common_pb2.ITEM_TYPE_FILES


async def get(rpc: RpcServer, who: Session) -> common_pb2.Profile:
    return await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=who.metadata)


async def put(rpc: RpcServer, who: Session, profile: common_pb2.Profile) -> common_pb2.Profile:
    return await rpc.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=profile), metadata=who.metadata
    )


def files_item(name: str) -> common_pb2.ProtectedItem:
    return common_pb2.ProtectedItem(name=name, type=FILES, includes=["/home"])


def s3_vault(name: str = "offsite") -> common_pb2.StorageVault:
    return common_pb2.StorageVault(
        name=name,
        type=common_pb2.VAULT_TYPE_S3,
        s3=common_pb2.S3VaultSettings(
            endpoint="http://s3", bucket="b", access_key="AK", secret_key="s3-secret-value"
        ),
        wrapped_vault_key=b"\x01wrapped-key",
    )


@pytest.fixture
async def alice(rpc: RpcServer) -> Session:
    await rpc.add_user("alice")
    return await rpc.device("alice", device_name="laptop")


async def test_a_write_needs_the_version_it_read_and_a_stale_one_is_refused(
    rpc: RpcServer, alice: Session
) -> None:
    first = await get(rpc, alice)
    assert first.username == "alice" and first.version == 1
    first.items.append(files_item("home"))
    second = await put(rpc, alice, first)
    assert second.version == 2
    [item] = second.items
    assert item.item_id and item.owner_device_id == alice.device_id
    assert item.created_at.seconds > 0

    first.items[0].name = "a concurrent edit"  # still carries version 1
    await expect_error(
        put(rpc, alice, first),
        grpc.StatusCode.ABORTED,
        "the profile changed since you read it; reload and try again",
    )
    assert [i.name for i in (await get(rpc, alice)).items] == ["home"]  # nothing merged


async def test_items_belong_to_their_device_but_every_device_sees_them(
    rpc: RpcServer, alice: Session
) -> None:
    profile = await get(rpc, alice)
    profile.items.append(files_item("laptop files"))
    await put(rpc, alice, profile)
    desktop = await rpc.device("alice", device_name="desktop")

    seen = await get(rpc, desktop)
    assert [(i.name, i.owner_device_id) for i in seen.items] == [("laptop files", alice.device_id)]
    # The desktop may add its own item and leave the laptop's unchanged...
    seen.items.append(files_item("desktop files"))
    seen = await put(rpc, desktop, seen)
    assert {i.name: i.owner_device_id for i in seen.items} == {
        "laptop files": alice.device_id,
        "desktop files": desktop.device_id,
    }
    # ...but neither edit nor delete the laptop's.
    edited = common_pb2.Profile()
    edited.CopyFrom(seen)
    edited.items[0].includes.append("/etc")
    await expect_error(
        put(rpc, desktop, edited), grpc.StatusCode.PERMISSION_DENIED, "belongs to another device"
    )
    deleted = common_pb2.Profile()
    deleted.CopyFrom(seen)
    del deleted.items[0]
    await expect_error(
        put(rpc, desktop, deleted), grpc.StatusCode.PERMISSION_DENIED, "only that device can delete"
    )
    # A forged owner id on a new item does not stick.
    forged = common_pb2.Profile()
    forged.CopyFrom(seen)
    forged.items.append(files_item("sneaky"))
    forged.items[-1].owner_device_id = alice.device_id
    result = await put(rpc, desktop, forged)
    assert {i.name: i.owner_device_id for i in result.items}["sneaky"] == desktop.device_id
    # The laptop itself may change its item.
    mine = await get(rpc, alice)
    mine.items[0].includes.append("/srv")
    assert list((await put(rpc, alice, mine)).items[0].includes) == ["/home", "/srv"]


async def test_vault_secrets_are_encrypted_at_rest_and_only_shown_to_the_accounts_devices(
    rpc: RpcServer, alice: Session, database_url: str
) -> None:
    profile = await get(rpc, alice)
    profile.vaults.append(s3_vault())
    profile.vaults.append(
        common_pb2.StorageVault(
            name="nas",
            type=common_pb2.VAULT_TYPE_SFTP,
            sftp=common_pb2.SftpVaultSettings(
                host="nas", username="u", password="sftp-pass", private_key="PEM-KEY"
            ),
        )
    )
    stored = await put(rpc, alice, profile)
    assert stored.vaults[0].s3.secret_key == "s3-secret-value"
    assert stored.vaults[1].sftp.password == "sftp-pass"
    assert stored.vaults[0].wrapped_vault_key == b"\x01wrapped-key"

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT profile::text FROM users WHERE username = 'alice'").fetchone()
    assert row is not None
    raw = row[0]
    for secret in ("s3-secret-value", "sftp-pass", "PEM-KEY"):
        assert secret not in raw
    assert "enc1:" in raw
    vault = json.loads(raw)["vaults"][0]
    assert vault["wrapped_vault_key"] == "AXdyYXBwZWQta2V5"  # stored as given (base64)

    again = await get(rpc, await rpc.device("alice", device_name="second"))
    assert again.vaults[0].s3.secret_key == "s3-secret-value"
    assert again.vaults[1].sftp.private_key == "PEM-KEY"

    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    root = await rpc.session("root")
    seen_by_admin = await rpc.admin.GetUserProfile(
        admin_pb2.GetUserProfileRequest(username="alice"), metadata=root.metadata
    )
    assert seen_by_admin.vaults[0].s3.access_key == "AK"
    assert seen_by_admin.vaults[0].s3.secret_key == ""
    assert seen_by_admin.vaults[1].sftp.password == ""


async def test_a_profile_written_under_another_server_key_cannot_be_read(
    rpc: RpcServer, alice: Session, database_url: str
) -> None:
    profile = await get(rpc, alice)
    profile.vaults.append(s3_vault())
    await put(rpc, alice, profile)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT id, profile FROM users WHERE username = 'alice'").fetchone()
    assert row is not None
    sealed = row[1]["vaults"][0]["s3"]["secret_key"]
    vault_id = row[1]["vaults"][0]["vault_id"]
    with pytest.raises(SecretKeyError, match="same secret key file"):
        SecretBox(b"k" * 32).open(sealed, context=f"vault:{row[0]}:{vault_id}:s3.secret_key")


def test_the_server_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    with pytest.raises(DatabaseSetupError, match="does not exist"):
        load_or_create_key(path, create=False)
    key = load_or_create_key(path, create=True)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path, create=True) == key
    path.write_text("not hex")
    with pytest.raises(DatabaseSetupError, match="64 hex digits"):
        load_or_create_key(path, create=False)


async def put_policy(rpc: RpcServer, admin: Session, **fields: object) -> common_pb2.Policy:
    return await rpc.admin.PutPolicy(common_pb2.Policy(**fields), metadata=admin.metadata)  # type: ignore[arg-type]


async def test_policy_rules_refuse_the_changes_they_forbid(rpc: RpcServer, alice: Session) -> None:
    profile = await get(rpc, alice)
    profile.items.append(files_item("home"))
    profile.vaults.append(s3_vault())
    profile = await put(rpc, alice, profile)

    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    root = await rpc.session("root")
    await put_policy(
        rpc,
        root,
        name="locked",
        is_default=True,
        flags=common_pb2.PolicyFlags(
            prevent_new_item=True,
            prevent_edit_item=True,
            prevent_delete_item=True,
            prevent_edit_vault=True,
            prevent_delete_vault=True,
        ),
    )
    profile = await get(rpc, alice)
    assert profile.policy.name == "locked" and profile.policy.flags.prevent_new_item

    cases: list[tuple[str, object]] = [
        ("prevent_new_item", lambda p: p.items.append(files_item("new"))),
        ("prevent_edit_item", lambda p: p.items[0].includes.append("/etc")),
        ("prevent_delete_item", lambda p: p.items.pop()),
        ("prevent_edit_vault", lambda p: setattr(p.vaults[0], "name", "renamed")),
        ("prevent_delete_vault", lambda p: p.vaults.pop()),
    ]
    for rule, change in cases:
        attempt = common_pb2.Profile()
        attempt.CopyFrom(profile)
        change(attempt)  # type: ignore[operator]
        await expect_error(put(rpc, alice, attempt), grpc.StatusCode.PERMISSION_DENIED, rule)
    # Unchanged items and vaults can still be written back (e.g. new settings).
    profile.settings.language = "de"
    assert (await put(rpc, alice, profile)).settings.language == "de"


async def test_mandatory_exclusions_and_enforced_retention_shape_the_effective_profile(
    rpc: RpcServer, alice: Session
) -> None:
    profile = await get(rpc, alice)
    profile.items.append(files_item("home"))
    profile.items[0].exclude_globs.append("*.iso")
    profile.items.append(
        common_pb2.ProtectedItem(
            name="db", type=common_pb2.ITEM_TYPE_PROGRAM, program_command="pg_dump"
        )
    )
    keep_all = common_pb2.RetentionPolicy(mode=common_pb2.RETENTION_MODE_KEEP_EVERYTHING)
    vault = s3_vault()
    vault.default_retention.CopyFrom(keep_all)
    profile.vaults.append(vault)
    profile = await put(rpc, alice, profile)

    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    root = await rpc.session("root")
    thirty = common_pb2.RetentionPolicy(
        mode=common_pb2.RETENTION_MODE_DELETE_EXCEPT,
        ranges=[
            common_pb2.RetentionRange(type=common_pb2.RETENTION_RANGE_MOST_RECENT_X_JOBS, jobs=30)
        ],
    )
    policy = await put_policy(
        rpc,
        root,
        name="company",
        exclusions=[
            common_pb2.MandatoryExclusion(pattern="*.tmp"),
            common_pb2.MandatoryExclusion(pattern=r".*\.cache/.*", is_regex=True),
            common_pb2.MandatoryExclusion(pattern="C:\\pagefile.sys", os="windows"),
        ],
        default_retention=thirty,
        enforce_retention=True,
    )
    await rpc.admin.AssignPolicy(
        admin_pb2.AssignPolicyRequest(username="alice", policy_id=policy.policy_id),
        metadata=root.metadata,
    )
    profile = await get(rpc, alice)
    home, db = profile.items
    assert list(home.exclude_globs) == ["*.iso", "*.tmp"]  # not the Windows-only one
    assert list(home.exclude_regexes) == [r".*\.cache/.*"]
    assert list(db.exclude_globs) == []  # Program Output items have no exclusions
    assert profile.vaults[0].default_retention == thirty

    # Writing the effective profile back does not store the policy's parts as the user's.
    profile.settings.language = "fr"
    written = await put(rpc, alice, profile)
    assert list(written.items[0].exclude_globs) == ["*.iso", "*.tmp"]
    await rpc.admin.AssignPolicy(
        admin_pb2.AssignPolicyRequest(username="alice"), metadata=root.metadata
    )
    unassigned = await get(rpc, alice)
    assert list(unassigned.items[0].exclude_globs) == ["*.iso"]
    assert unassigned.vaults[0].default_retention == keep_all


async def test_a_new_device_gets_the_policys_default_items_and_schedules(rpc: RpcServer) -> None:
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    root = await rpc.session("root")
    await rpc.add_user("bob")
    first = await rpc.device("bob", device_name="first")
    profile = await get(rpc, first)
    profile.vaults.append(s3_vault())
    await put(rpc, first, profile)
    await put_policy(
        rpc,
        root,
        name="defaults",
        is_default=True,
        default_items=[
            common_pb2.ProtectedItem(
                item_id="t1", name="documents", type=FILES, includes=["~/Documents"]
            )
        ],
        default_schedules=[
            common_pb2.Schedule(
                item_id="t1", frequency=common_pb2.SCHEDULE_FREQUENCY_DAILY, hour=22, enabled=True
            )
        ],
    )
    second = await rpc.device("bob", device_name="second")
    profile = await get(rpc, second)
    [item] = profile.items
    assert item.name == "documents" and item.owner_device_id == second.device_id
    assert item.item_id != "t1"
    [schedule] = profile.schedules
    assert schedule.item_id == item.item_id and schedule.vault_id == profile.vaults[0].vault_id
    assert schedule.hour == 22 and schedule.schedule_id
    # A login of an already registered device adds nothing.
    again = await rpc.auth.Login(
        control_pb2.LoginRequest(username="bob", auth_key=auth_key(), device_id=second.device_id)
    )
    assert not again.device_registered_now
    second = Session((("authorization", f"Bearer {again.device_token}"),), "bob")
    assert len((await get(rpc, second)).items) == 1


async def test_schedules_must_name_known_items_and_vaults(rpc: RpcServer, alice: Session) -> None:
    profile = await get(rpc, alice)
    profile.schedules.append(
        common_pb2.Schedule(
            item_id="nope", vault_id="nope", frequency=common_pb2.SCHEDULE_FREQUENCY_HOURLY
        )
    )
    await expect_error(
        put(rpc, alice, profile), grpc.StatusCode.INVALID_ARGUMENT, "unknown Protected Item"
    )
