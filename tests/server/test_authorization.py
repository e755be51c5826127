"""Every boundary tried and refused: other accounts' profiles, devices and jobs;
AdminService without an admin session; roles beyond what they allow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import pytest

from comet.server.store.accounts import Role
from comet.v1 import admin_pb2, common_pb2, control_pb2
from tests.server.conftest import RpcServer, Session, expect_error

Call = Callable[[RpcServer, Session], Awaitable[object]]

ADMIN_CALLS: dict[str, Call] = {
    "AddUser": lambda r, s: r.admin.AddUser(
        admin_pb2.AddUserRequest(username="x", auth_key=b"k" * 32), metadata=s.metadata
    ),
    "ListUsers": lambda r, s: r.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=s.metadata),
    "DeleteUser": lambda r, s: r.admin.DeleteUser(
        admin_pb2.DeleteUserRequest(username="alice"), metadata=s.metadata
    ),
    "ResetPassword": lambda r, s: r.admin.ResetPassword(
        admin_pb2.ResetPasswordRequest(username="alice", auth_key=b"k" * 32, force=True),
        metadata=s.metadata,
    ),
    "GetUserProfile": lambda r, s: r.admin.GetUserProfile(
        admin_pb2.GetUserProfileRequest(username="alice"), metadata=s.metadata
    ),
    "ListDevices": lambda r, s: r.admin.ListDevices(
        admin_pb2.ListDevicesRequest(), metadata=s.metadata
    ),
    "RevokeDevice": lambda r, s: r.admin.RevokeDevice(
        admin_pb2.RevokeDeviceRequest(device_id="d"), metadata=s.metadata
    ),
    "PutPolicy": lambda r, s: r.admin.PutPolicy(common_pb2.Policy(name="p"), metadata=s.metadata),
    "ListPolicies": lambda r, s: r.admin.ListPolicies(
        admin_pb2.ListPoliciesRequest(), metadata=s.metadata
    ),
    "DeletePolicy": lambda r, s: r.admin.DeletePolicy(
        admin_pb2.DeletePolicyRequest(policy_id="p"), metadata=s.metadata
    ),
    "AssignPolicy": lambda r, s: r.admin.AssignPolicy(
        admin_pb2.AssignPolicyRequest(username="alice"), metadata=s.metadata
    ),
    "ListJobs": lambda r, s: r.admin.ListJobs(control_pb2.JobFilter(), metadata=s.metadata),
    "GetJobLog": lambda r, s: r.admin.GetJobLog(
        admin_pb2.GetJobLogRequest(job_id="j"), metadata=s.metadata
    ),
    "Dispatch": lambda r, s: r.admin.Dispatch(
        admin_pb2.DispatchRequest(
            device_id="d", command=control_pb2.Command(refetch_profile=control_pb2.Empty())
        ),
        metadata=s.metadata,
    ),
    "ListAudit": lambda r, s: r.admin.ListAudit(admin_pb2.ListAuditRequest(), metadata=s.metadata),
    "ListBuckets": lambda r, s: r.admin.ListBuckets(
        admin_pb2.ListBucketsRequest(), metadata=s.metadata
    ),
    "DeleteBucket": lambda r, s: r.admin.DeleteBucket(
        admin_pb2.DeleteBucketRequest(bucket_id="b"), metadata=s.metadata
    ),
    # Immutable buckets: SUPER admins only.
    "GrantBucketDelete": lambda r, s: r.admin.GrantBucketDelete(
        admin_pb2.GrantBucketDeleteRequest(bucket_id="b"), metadata=s.metadata
    ),
    "UndeleteObjects": lambda r, s: r.admin.UndeleteObjects(
        admin_pb2.UndeleteObjectsRequest(bucket_id="b", all=True), metadata=s.metadata
    ),
    "ResetUserTotp": lambda r, s: r.admin.ResetUserTotp(
        admin_pb2.ResetUserTotpRequest(username="alice"), metadata=s.metadata
    ),
    "CreateApiKey": lambda r, s: r.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(name="k"), metadata=s.metadata
    ),
    "ListApiKeys": lambda r, s: r.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(), metadata=s.metadata
    ),
    "RevokeApiKey": lambda r, s: r.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(key_id="00000000-0000-0000-0000-000000000000"),
        metadata=s.metadata,
    ),
}
# Every administrator manages their own API keys.
OWN_KEYS = {"CreateApiKey", "ListApiKeys", "RevokeApiKey"}

# What each role may call; everything else is refused with PERMISSION_DENIED.
ALLOWED = {
    Role.OPERATOR: {
        "ListUsers",
        "GetUserProfile",
        "ListDevices",
        "ListPolicies",
        "ListJobs",
        "GetJobLog",
        "Dispatch",
        "ListBuckets",
        *OWN_KEYS,
    },
    Role.AUDITOR: {
        "ListUsers",
        "GetUserProfile",
        "ListDevices",
        "ListPolicies",
        "ListJobs",
        "GetJobLog",
        "ListAudit",
        "ListBuckets",
        *OWN_KEYS,
    },
}


def test_every_admin_rpc_is_covered() -> None:
    methods = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].methods_by_name
    assert set(methods) == set(ADMIN_CALLS)


@pytest.fixture
async def alice(rpc: RpcServer) -> Session:
    await rpc.add_user("alice")
    return await rpc.device("alice")


async def test_no_user_or_device_credential_opens_the_admin_service(
    rpc: RpcServer, alice: Session
) -> None:
    user_session = await rpc.session("alice", admin=False)
    anonymous = Session((), "nobody")
    for call in ADMIN_CALLS.values():
        for who, text in (
            (user_session, "needs an administrator session"),
            (alice, "needs an administrator session"),  # a device token is no session
            (anonymous, "needs a credential"),
        ):
            await expect_error(call(rpc, who), grpc.StatusCode.UNAUTHENTICATED, text)
    # Nor can an ordinary user open an admin session.
    await expect_error(
        rpc.session("alice", admin=True), grpc.StatusCode.UNAUTHENTICATED, "not an administrator"
    )


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR])
async def test_roles_are_refused_what_they_do_not_allow(
    rpc: RpcServer, alice: Session, role: Role
) -> None:
    await rpc.add_user("staff", role=role)
    staff = await rpc.session("staff")
    for name, call in ADMIN_CALLS.items():
        if name in ALLOWED[role]:
            try:
                await call(rpc, staff)
            except grpc.aio.AioRpcError as e:  # allowed, but e.g. the device is offline
                assert e.code() not in (
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.UNAUTHENTICATED,
                ), (name, e.details())
        else:
            await expect_error(
                call(rpc, staff), grpc.StatusCode.PERMISSION_DENIED, "does not allow this action"
            )


async def test_an_account_never_reaches_another_accounts_profile_devices_or_jobs(
    rpc: RpcServer, alice: Session
) -> None:
    profile = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=alice.metadata)
    profile.items.append(common_pb2.ProtectedItem(name="secret plans", type=1))
    profile.vaults.append(
        common_pb2.StorageVault(
            name="v", type=common_pb2.VAULT_TYPE_S3, s3=common_pb2.S3VaultSettings(secret_key="s")
        )
    )
    alice_profile = await rpc.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=profile), metadata=alice.metadata
    )
    await rpc.agent.ReportJob(
        control_pb2.JobReport(job=common_pb2.Job(job_id="alice-job", classification=4001)),
        metadata=alice.metadata,
    )
    await rpc.add_user("bob")
    bob = await rpc.device("bob")

    seen = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=bob.metadata)
    assert seen.username == "bob" and list(seen.items) == [] and list(seen.vaults) == []
    # Writing alice's profile (her username, ids, version) only ever writes bob's own.
    forged = common_pb2.Profile()
    forged.CopyFrom(alice_profile)
    forged.version = seen.version
    written = await rpc.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=forged), metadata=bob.metadata
    )
    assert written.username == "bob"
    assert [i.owner_device_id for i in written.items] == [bob.device_id]
    again = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=alice.metadata)
    assert again.version == alice_profile.version
    assert [i.owner_device_id for i in again.items] == [alice.device_id]

    devices = await rpc.agent.ListDevices(
        control_pb2.ListAccountDevicesRequest(), metadata=bob.metadata
    )
    assert [d.device_id for d in devices.devices] == [bob.device_id]
    jobs = await rpc.agent.ListJobs(
        control_pb2.ListAccountJobsRequest(
            filter=control_pb2.JobFilter(username="alice", device_id=alice.device_id)
        ),
        metadata=bob.metadata,
    )
    assert list(jobs.jobs) == []
    await expect_error(
        rpc.agent.ReportJob(
            control_pb2.JobReport(
                job=common_pb2.Job(job_id="alice-job", status=common_pb2.JOB_STATUS_ERROR)
            ),
            metadata=bob.metadata,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "belongs to another device",
    )


async def test_agent_calls_need_a_device_credential(rpc: RpcServer, alice: Session) -> None:
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    root = await rpc.session("root")
    user_session = await rpc.session("alice", admin=False)
    for who in (root, user_session, Session((), "nobody")):
        for call in (
            rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=who.metadata),
            rpc.agent.PutProfile(control_pb2.PutProfileRequest(), metadata=who.metadata),
            rpc.agent.ListJobs(control_pb2.ListAccountJobsRequest(), metadata=who.metadata),
            rpc.agent.ReportJob(control_pb2.JobReport(), metadata=who.metadata),
            rpc.auth.ChangePassword(control_pb2.ChangePasswordRequest(), metadata=who.metadata),
        ):
            await expect_error(call, grpc.StatusCode.UNAUTHENTICATED, "")


async def test_browsing_a_devices_files_needs_the_users_consent(rpc: RpcServer) -> None:
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    await rpc.add_user("alice")
    root = await rpc.session("root")
    alice = await rpc.device("alice")
    browse = admin_pb2.DispatchRequest(
        device_id=alice.device_id,
        command=control_pb2.Command(
            browse_filesystem=control_pb2.BrowseFilesystemCommand(path="/home")
        ),
    )
    # Refused before anything is sent to the device, connected or not.
    await expect_error(
        rpc.admin.Dispatch(browse, metadata=root.metadata),
        grpc.StatusCode.PERMISSION_DENIED,
        "does not allow administrators to view files",
    )
    profile = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=alice.metadata)
    profile.settings.allow_admin_view_files = True
    await rpc.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=profile), metadata=alice.metadata
    )
    # Now it goes through to the device, which is not connected in this test.
    await expect_error(
        rpc.admin.Dispatch(browse, metadata=root.metadata),
        grpc.StatusCode.UNAVAILABLE,
        "is not connected",
    )
