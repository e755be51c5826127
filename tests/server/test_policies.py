"""Policies over the real AdminService: create, edit with versions, default, assign,
delete, audit."""

from __future__ import annotations

import grpc
import pytest

from comet.agent.credentials import KdfParams
from comet.server.rpc.convert import kdf_to_proto
from comet.server.store.accounts import Role
from comet.v1 import admin_pb2, common_pb2, control_pb2
from tests.server.conftest import RpcServer, Session, expect_error


@pytest.fixture
async def root(rpc: RpcServer) -> Session:
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    return await rpc.session("root")


async def test_policies_are_created_edited_with_versions_and_deleted(
    rpc: RpcServer, root: Session
) -> None:
    created = await rpc.admin.PutPolicy(
        common_pb2.Policy(name="strict", flags=common_pb2.PolicyFlags(prevent_delete_vault=True)),
        metadata=root.metadata,
    )
    assert created.policy_id and created.version == 1 and created.flags.prevent_delete_vault
    await expect_error(
        rpc.admin.PutPolicy(common_pb2.Policy(name="strict"), metadata=root.metadata),
        grpc.StatusCode.ALREADY_EXISTS,
        "strict",
    )
    edit = common_pb2.Policy()
    edit.CopyFrom(created)
    edit.flags.hide_import = True
    edited = await rpc.admin.PutPolicy(edit, metadata=root.metadata)
    assert edited.version == 2 and edited.flags.hide_import
    await expect_error(
        rpc.admin.PutPolicy(edit, metadata=root.metadata),  # still version 1
        grpc.StatusCode.ABORTED,
        "changed since you read it",
    )
    listed = await rpc.admin.ListPolicies(admin_pb2.ListPoliciesRequest(), metadata=root.metadata)
    assert [(p.name, p.version) for p in listed.policies] == [("strict", 2)]

    await rpc.admin.DeletePolicy(
        admin_pb2.DeletePolicyRequest(policy_id=created.policy_id), metadata=root.metadata
    )
    await expect_error(
        rpc.admin.DeletePolicy(
            admin_pb2.DeletePolicyRequest(policy_id=created.policy_id), metadata=root.metadata
        ),
        grpc.StatusCode.NOT_FOUND,
        "no policy",
    )
    audit = await rpc.admin.ListAudit(admin_pb2.ListAuditRequest(), metadata=root.metadata)
    done = [e.action for e in audit.events if e.action.startswith("policy.") and e.success]
    assert done == ["policy.delete", "policy.edit", "policy.create"]
    # The refused saves (a taken name, a stale version) are audited as refused.
    refused = [e.action for e in audit.events if e.action.startswith("policy.") and not e.success]
    assert refused == ["policy.edit", "policy.create"]


async def test_the_default_policy_applies_to_users_without_one(
    rpc: RpcServer, root: Session
) -> None:
    await rpc.add_user("alice")
    alice = await rpc.device("alice")

    async def policy_name() -> str:
        profile = await rpc.agent.GetProfile(
            control_pb2.GetProfileRequest(), metadata=alice.metadata
        )
        return profile.policy.name

    assert await policy_name() == ""
    first = await rpc.admin.PutPolicy(
        common_pb2.Policy(name="base", is_default=True), metadata=root.metadata
    )
    assert await policy_name() == "base"
    # A second default takes the role from the first.
    await rpc.admin.PutPolicy(
        common_pb2.Policy(name="base2", is_default=True), metadata=root.metadata
    )
    listed = await rpc.admin.ListPolicies(admin_pb2.ListPoliciesRequest(), metadata=root.metadata)
    assert {p.name: p.is_default for p in listed.policies} == {"base": False, "base2": True}
    assert await policy_name() == "base2"

    await rpc.admin.AssignPolicy(
        admin_pb2.AssignPolicyRequest(username="alice", policy_id=first.policy_id),
        metadata=root.metadata,
    )
    assert await policy_name() == "base"
    users = await rpc.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=root.metadata)
    assert {u.username: u.policy_id for u in users.users}["alice"] == first.policy_id
    # Deleting the assigned policy falls back to the default.
    await rpc.admin.DeletePolicy(
        admin_pb2.DeletePolicyRequest(policy_id=first.policy_id), metadata=root.metadata
    )
    assert await policy_name() == "base2"

    await expect_error(
        rpc.admin.AssignPolicy(
            admin_pb2.AssignPolicyRequest(username="alice", policy_id="missing"),
            metadata=root.metadata,
        ),
        grpc.StatusCode.NOT_FOUND,
        "no policy",
    )
    await expect_error(
        rpc.admin.AssignPolicy(
            admin_pb2.AssignPolicyRequest(username="nobody"), metadata=root.metadata
        ),
        grpc.StatusCode.NOT_FOUND,
        "nobody",
    )


async def test_a_policy_can_forbid_password_and_email_changes(
    rpc: RpcServer, root: Session
) -> None:
    await rpc.add_user("alice")
    alice = await rpc.device("alice")
    await rpc.admin.PutPolicy(
        common_pb2.Policy(
            name="locked",
            is_default=True,
            flags=common_pb2.PolicyFlags(prevent_change_password=True, prevent_change_email=True),
        ),
        metadata=root.metadata,
    )
    profile = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=alice.metadata)
    profile.settings.emails.append("a@example.com")
    await expect_error(
        rpc.agent.PutProfile(
            control_pb2.PutProfileRequest(profile=profile), metadata=alice.metadata
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "prevent_change_email",
    )
    await expect_error(
        rpc.auth.ChangePassword(
            control_pb2.ChangePasswordRequest(
                new_auth_key=b"k" * 32, new_kdf=kdf_to_proto(KdfParams.new())
            ),
            metadata=alice.metadata,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "prevent_change_password",
    )
