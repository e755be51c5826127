"""The role matrix: every RPC of every service, called by every kind of caller
against a real comet-server, allowed or denied exactly as the permission table says
(docs/permissions.md is that table in prose). Then the commands that run programs:
an OPERATOR's restore into a program is refused, and the audit log says what was
asked."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from comet.agent.credentials import KdfParams
from comet.server.authorization import ANYONE, PERMISSIONS, RPC_ACTIONS, Caller
from comet.v1 import admin_pb2, common_pb2, control_pb2, control_pb2_grpc, notify_pb2, storage_pb2
from tests.security.conftest import Cast, Metadata, bearer, login

pytestmark = pytest.mark.timeout(120)

# The callers of the matrix and the kind of credential each one is.
CALLERS: dict[str, Caller | None] = {
    "anonymous": Caller.ANONYMOUS,
    "user": Caller.USER,
    "device": Caller.DEVICE,
    "revoked device": None,  # a credential that must open nothing
    "super": Caller.SUPER,
    "operator": Caller.OPERATOR,
    "auditor": Caller.AUDITOR,
    "bucket": Caller.BUCKET,
}
DENIALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
SESSION_LOGINS = {
    "user": ("alice", False),
    "super": ("root", True),
    "operator": ("op", True),
    "auditor": ("aud", True),
}

Call = Callable[[Cast, str, Metadata], object]


def _drain(stream: Iterator[object]) -> list[object]:
    return list(stream)


def _connect(cast: Cast, _who: str, md: Metadata) -> object:
    stream = cast.stubs.agent.Connect(iter(()), metadata=md, timeout=10)
    first = next(stream)
    stream.cancel()
    return first


def _logout(cast: Cast, who: str, md: Metadata) -> object:
    if who in SESSION_LOGINS:  # a fresh session of the same kind: the shared one lives on
        name, admin = SESSION_LOGINS[who]
        md = bearer(login(cast.stubs, name, admin_session=admin).session_token)
    return cast.stubs.auth.Logout(control_pb2.LogoutRequest(), metadata=md, timeout=10)


def _new_user() -> admin_pb2.AddUserRequest:
    kdf = KdfParams.new()
    return admin_pb2.AddUserRequest(
        username=f"m-{uuid.uuid4().hex[:12]}",
        kdf=control_pb2.KdfParams(
            algorithm=kdf.algorithm, salt=kdf.salt, log2_n=kdf.log2_n, r=kdf.r, p=kdf.p
        ),
        auth_key=os.urandom(32),
    )


NOBODY = str(uuid.UUID(int=0))
REFETCH = control_pb2.Command(refetch_profile=control_pb2.Empty())

CALLS: dict[str, Call] = {
    "AuthService/PreLogin": lambda c, w, md: c.stubs.auth.PreLogin(
        control_pb2.PreLoginRequest(username="alice"), metadata=md, timeout=10
    ),
    "AuthService/Login": lambda c, w, md: login(c.stubs, "alice"),
    "AuthService/Logout": _logout,
    "AuthService/ChangePassword": lambda c, w, md: c.stubs.auth.ChangePassword(
        control_pb2.ChangePasswordRequest(), metadata=md, timeout=10
    ),
    "AuthService/BeginTotpEnrolment": lambda c, w, md: c.stubs.auth.BeginTotpEnrolment(
        control_pb2.BeginTotpEnrolmentRequest(), metadata=md, timeout=10
    ),
    "AuthService/ConfirmTotpEnrolment": lambda c, w, md: c.stubs.auth.ConfirmTotpEnrolment(
        control_pb2.ConfirmTotpEnrolmentRequest(code="000000"), metadata=md, timeout=10
    ),
    "AuthService/DisableTotp": lambda c, w, md: c.stubs.auth.DisableTotp(
        control_pb2.DisableTotpRequest(code="000000"), metadata=md, timeout=10
    ),
    "AgentService/GetProfile": lambda c, w, md: c.stubs.agent.GetProfile(
        control_pb2.GetProfileRequest(), metadata=md, timeout=10
    ),
    "AgentService/PutProfile": lambda c, w, md: c.stubs.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=common_pb2.Profile(version=1 << 40)),
        metadata=md,
        timeout=10,
    ),
    "AgentService/ReportJob": lambda c, w, md: c.stubs.agent.ReportJob(
        control_pb2.JobReport(
            job=common_pb2.Job(job_id=str(uuid.uuid4()), classification=4001, status=5000)
        ),
        metadata=md,
        timeout=10,
    ),
    "AgentService/ListDevices": lambda c, w, md: c.stubs.agent.ListDevices(
        control_pb2.ListAccountDevicesRequest(), metadata=md, timeout=10
    ),
    "AgentService/ListJobs": lambda c, w, md: c.stubs.agent.ListJobs(
        control_pb2.ListAccountJobsRequest(), metadata=md, timeout=10
    ),
    "AgentService/Connect": _connect,
    "AgentService/CreateBucket": lambda c, w, md: c.stubs.agent.CreateBucket(
        control_pb2.CreateBucketRequest(), metadata=md, timeout=10
    ),
    "AgentService/RequestDeleteGrant": lambda c, w, md: c.stubs.agent.RequestDeleteGrant(
        control_pb2.DeleteGrantRequest(bucket_id=NOBODY, auth_key=b"k" * 32),
        metadata=md,
        timeout=10,
    ),
    "AgentService/ReportDeviceEvent": lambda c, w, md: c.stubs.agent.ReportDeviceEvent(
        control_pb2.DeviceEvent(action="lock"), metadata=md, timeout=10
    ),
    "StorageService/Put": lambda c, w, md: c.stubs.storage.Put(
        iter([storage_pb2.PutObjectChunk(key="matrix", data=b"x", total_size=1)]),
        metadata=md,
        timeout=10,
    ),
    "StorageService/Get": lambda c, w, md: _drain(
        c.stubs.storage.Get(
            storage_pb2.GetObjectRequest(key="matrix", to_end=True), metadata=md, timeout=10
        )
    ),
    "StorageService/Stat": lambda c, w, md: c.stubs.storage.Stat(
        storage_pb2.StatObjectRequest(key="matrix"), metadata=md, timeout=10
    ),
    "StorageService/Delete": lambda c, w, md: c.stubs.storage.Delete(
        storage_pb2.DeleteObjectRequest(key="no-such-object"), metadata=md, timeout=10
    ),
    "StorageService/List": lambda c, w, md: _drain(
        c.stubs.storage.List(storage_pb2.ListObjectsRequest(), metadata=md, timeout=10)
    ),
    "StorageService/ExtendProtection": lambda c, w, md: c.stubs.storage.ExtendProtection(
        storage_pb2.ExtendProtectionRequest(key="matrix"), metadata=md, timeout=10
    ),
    "AdminService/AddUser": lambda c, w, md: c.stubs.admin.AddUser(
        _new_user(), metadata=md, timeout=10
    ),
    "AdminService/ListUsers": lambda c, w, md: c.stubs.admin.ListUsers(
        admin_pb2.ListUsersRequest(), metadata=md, timeout=10
    ),
    "AdminService/DeleteUser": lambda c, w, md: c.stubs.admin.DeleteUser(
        admin_pb2.DeleteUserRequest(username="nobody-here"), metadata=md, timeout=10
    ),
    "AdminService/ResetPassword": lambda c, w, md: c.stubs.admin.ResetPassword(
        admin_pb2.ResetPasswordRequest(username="nobody-here", auth_key=b"k" * 32),
        metadata=md,
        timeout=10,
    ),
    "AdminService/GetUserProfile": lambda c, w, md: c.stubs.admin.GetUserProfile(
        admin_pb2.GetUserProfileRequest(username="alice"), metadata=md, timeout=10
    ),
    "AdminService/ListDevices": lambda c, w, md: c.stubs.admin.ListDevices(
        admin_pb2.ListDevicesRequest(), metadata=md, timeout=10
    ),
    "AdminService/RevokeDevice": lambda c, w, md: c.stubs.admin.RevokeDevice(
        admin_pb2.RevokeDeviceRequest(device_id=NOBODY), metadata=md, timeout=10
    ),
    "AdminService/PutPolicy": lambda c, w, md: c.stubs.admin.PutPolicy(
        common_pb2.Policy(name=f"p-{uuid.uuid4().hex[:8]}"), metadata=md, timeout=10
    ),
    "AdminService/ListPolicies": lambda c, w, md: c.stubs.admin.ListPolicies(
        admin_pb2.ListPoliciesRequest(), metadata=md, timeout=10
    ),
    "AdminService/DeletePolicy": lambda c, w, md: c.stubs.admin.DeletePolicy(
        admin_pb2.DeletePolicyRequest(policy_id=NOBODY), metadata=md, timeout=10
    ),
    "AdminService/AssignPolicy": lambda c, w, md: c.stubs.admin.AssignPolicy(
        admin_pb2.AssignPolicyRequest(username="nobody-here"), metadata=md, timeout=10
    ),
    "AdminService/ListJobs": lambda c, w, md: c.stubs.admin.ListJobs(
        control_pb2.JobFilter(), metadata=md, timeout=10
    ),
    "AdminService/GetJobLog": lambda c, w, md: c.stubs.admin.GetJobLog(
        admin_pb2.GetJobLogRequest(job_id=NOBODY), metadata=md, timeout=10
    ),
    "AdminService/Dispatch": lambda c, w, md: c.stubs.admin.Dispatch(
        admin_pb2.DispatchRequest(device_id=c.device_id, command=REFETCH, timeout_seconds=2),
        metadata=md,
        timeout=10,
    ),
    "AdminService/ListAudit": lambda c, w, md: c.stubs.admin.ListAudit(
        admin_pb2.ListAuditRequest(limit=5), metadata=md, timeout=10
    ),
    "AdminService/ResetUserTotp": lambda c, w, md: c.stubs.admin.ResetUserTotp(
        admin_pb2.ResetUserTotpRequest(username="nobody-at-all"), metadata=md, timeout=10
    ),
    "AdminService/ListBuckets": lambda c, w, md: c.stubs.admin.ListBuckets(
        admin_pb2.ListBucketsRequest(), metadata=md, timeout=10
    ),
    "AdminService/DeleteBucket": lambda c, w, md: c.stubs.admin.DeleteBucket(
        admin_pb2.DeleteBucketRequest(bucket_id=NOBODY), metadata=md, timeout=10
    ),
    "AdminService/GrantBucketDelete": lambda c, w, md: c.stubs.admin.GrantBucketDelete(
        admin_pb2.GrantBucketDeleteRequest(bucket_id=NOBODY), metadata=md, timeout=10
    ),
    "AdminService/UndeleteObjects": lambda c, w, md: c.stubs.admin.UndeleteObjects(
        admin_pb2.UndeleteObjectsRequest(bucket_id=NOBODY, all=True), metadata=md, timeout=10
    ),
    # Invalid or unknown arguments: an allowed caller gets past the table and no
    # further (no settings changed, nothing queued).
    "NotificationService/SetSmtpSettings": lambda c, w, md: c.stubs.notify.SetSmtpSettings(
        notify_pb2.SmtpSettings(), metadata=md, timeout=10
    ),
    "NotificationService/GetSmtpSettings": lambda c, w, md: c.stubs.notify.GetSmtpSettings(
        notify_pb2.GetSmtpSettingsRequest(), metadata=md, timeout=10
    ),
    "NotificationService/SendTestEmail": lambda c, w, md: c.stubs.notify.SendTestEmail(
        notify_pb2.SendTestEmailRequest(address="x@example.test", timeout_seconds=1),
        metadata=md,
        timeout=10,
    ),
    "NotificationService/AddEmailRecipient": lambda c, w, md: c.stubs.notify.AddEmailRecipient(
        notify_pb2.EmailRecipient(address="not an address"), metadata=md, timeout=10
    ),
    "NotificationService/ListEmailRecipients": lambda c, w, md: c.stubs.notify.ListEmailRecipients(
        notify_pb2.ListEmailRecipientsRequest(), metadata=md, timeout=10
    ),
    "NotificationService/DeleteEmailRecipient": lambda c, w, md: (
        c.stubs.notify.DeleteEmailRecipient(
            notify_pb2.DeleteEmailRecipientRequest(recipient_id=NOBODY), metadata=md, timeout=10
        )
    ),
    "NotificationService/AddWebhook": lambda c, w, md: c.stubs.notify.AddWebhook(
        notify_pb2.AddWebhookRequest(url="ftp://nowhere", events=["job.ended"]),
        metadata=md,
        timeout=10,
    ),
    "NotificationService/ListWebhooks": lambda c, w, md: c.stubs.notify.ListWebhooks(
        notify_pb2.ListWebhooksRequest(), metadata=md, timeout=10
    ),
    "NotificationService/DeleteWebhook": lambda c, w, md: c.stubs.notify.DeleteWebhook(
        notify_pb2.DeleteWebhookRequest(webhook_id=NOBODY), metadata=md, timeout=10
    ),
    "NotificationService/ListDeliveries": lambda c, w, md: c.stubs.notify.ListDeliveries(
        notify_pb2.ListDeliveriesRequest(), metadata=md, timeout=10
    ),
    # Own keys: an allowed caller lists, creates one of its own role, revokes a
    # key it does not have (NOT_FOUND, not a denial).
    "AdminService/CreateApiKey": lambda c, w, md: c.stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(name=f"matrix {w}"), metadata=md, timeout=10
    ),
    "AdminService/ListApiKeys": lambda c, w, md: c.stubs.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(), metadata=md, timeout=10
    ),
    "AdminService/RevokeApiKey": lambda c, w, md: c.stubs.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(key_id=NOBODY), metadata=md, timeout=10
    ),
}


def _wire_methods() -> set[str]:
    names = set()
    for module in (admin_pb2, control_pb2, storage_pb2, notify_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            names |= {f"{service.name}/{m.name}" for m in service.methods}
    return names


def test_every_rpc_has_a_row_in_the_table_and_a_call_in_the_matrix() -> None:
    methods = _wire_methods()
    assert methods == set(RPC_ACTIONS), "an RPC with no permission row, or a stale row"
    assert methods == set(CALLS), "an RPC the matrix does not call"
    assert set(PERMISSIONS) >= set(RPC_ACTIONS.values())


DOCS = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def documented_table() -> dict[str, frozenset[Caller]]:
    """docs/permissions.md's tables: action -> the callers with a tick."""
    table: dict[str, frozenset[Caller]] = {}
    header: list[str] = []
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or set(cells[0]) <= {"-", " "}:
            continue
        if cells[0] == "Actions":
            header = cells
            continue
        if not header:
            continue
        ticks = frozenset(
            Caller(header[i].lower()) for i in range(2, len(header)) if cells[i] == "✔"
        )
        for action in cells[0].split(","):
            assert action.strip() not in table, f"{action} documented twice"
            table[action.strip()] = ticks
    return table


def test_the_documented_table_is_the_enforced_table() -> None:
    enforced = {action.value: callers for action, callers in PERMISSIONS.items()}
    assert documented_table() == enforced


def test_comet_admin_creates_each_role(cast: Cast) -> None:
    roles = {u["username"]: u["role"] for u in cast.admin_cli("user", "list", "--json").json()}
    assert {k: roles[k] for k in ("root", "op", "aud", "alice")} == {
        "root": "super",
        "op": "operator",
        "aud": "auditor",
        "alice": "user",
    }
    clash = cast.admin_cli(
        "user", "add", "x", "--admin", "--role", "auditor", "--password-stdin",
        stdin="password-123\n", check=False,
    )  # fmt: skip
    assert clash.returncode != 0 and "--admin means --role super" in clash.stderr


def expected_allowed(rpc: str, who: str) -> bool:
    allowed = PERMISSIONS[RPC_ACTIONS[rpc]]
    if allowed == ANYONE:
        return True
    caller = CALLERS[who]
    return caller is not None and caller in allowed


def test_the_matrix_runs_over_tls_only(cast: Cast) -> None:
    """The server under test speaks TLS with the pinned certificate: a plaintext
    client gets no reply at all, so every call in the matrix crossed TLS."""
    assert cast.server.url.startswith("https://")
    target = cast.server.url.removeprefix("https://").rstrip("/")
    with grpc.insecure_channel(target) as plaintext:
        stub = control_pb2_grpc.AuthServiceStub(plaintext)
        with pytest.raises(grpc.RpcError) as refused:
            stub.PreLogin(control_pb2.PreLoginRequest(username="alice"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_role_matrix(cast: Cast) -> None:
    outcomes: dict[tuple[str, str], str] = {}
    wrong: list[str] = []
    for rpc, call in CALLS.items():
        for who in CALLERS:
            try:
                call(cast, who, cast.metadata[who])
                outcome = "ok"
            except grpc.RpcError as e:
                code = e.code()  # type: ignore[attr-defined]
                outcome = f"{code.name}: {e.details()}"  # type: ignore[attr-defined]
                denied = code in DENIALS
            else:
                denied = False
            outcomes[(rpc, who)] = outcome
            if denied == expected_allowed(rpc, who):
                wrong.append(
                    f"{rpc} by {who}: expected "
                    f"{'allowed' if expected_allowed(rpc, who) else 'denied'}, got {outcome}"
                )
    assert not wrong, "\n".join(wrong)
    # The table is not vacuous: each caller is refused something.
    for who in CALLERS:
        results = [outcomes[(rpc, who)] for rpc in CALLS]
        assert any(r.split(":")[0] in ("PERMISSION_DENIED", "UNAUTHENTICATED") for r in results)
    # A known caller refused for its role is in the audit log, with what it tried.
    denied = cast.stubs.admin.ListAudit(
        admin_pb2.ListAuditRequest(action="authorization.denied", limit=500),
        metadata=cast.metadata["super"],
        timeout=10,
    ).events
    tried = {(e.actor, e.target) for e in denied if not e.success}
    assert {("op", "AdminService/AddUser"), ("aud", "AdminService/Dispatch")} <= tried
    assert ("root", "AgentService/GetProfile") not in tried  # another credential kind: no row


PROGRAM_RESTORE = control_pb2.Command(
    run_restore=control_pb2.RunRestoreCommand(
        vault_id="v",
        snapshot_id="latest",
        item_id="i",
        options=common_pb2.RestoreOptions(
            type=common_pb2.RESTORE_TYPE_PROGRAM_PER_FILE,
            program_command="id > /tmp/comet-operator-was-here",
        ),
    )
)


def _dispatch(cast: Cast, who: str, command: control_pb2.Command) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        cast.stubs.admin.Dispatch(
            admin_pb2.DispatchRequest(device_id=cast.device_id, command=command, timeout_seconds=2),
            metadata=cast.metadata[who],
            timeout=10,
        )
    return info.value


def test_only_a_super_admin_may_make_a_device_run_a_program(cast: Cast) -> None:
    refused = _dispatch(cast, "operator", PROGRAM_RESTORE)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "command.run_program" in refused.details()  # type: ignore[attr-defined]
    # The same command from a SUPER admin passes the table and the privacy check only
    # once the user allows it; the (offline) device is what stops it then.
    private = _dispatch(cast, "super", PROGRAM_RESTORE)
    assert private.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "does not allow administrators to view files" in private.details()  # type: ignore[attr-defined]

    events = cast.stubs.admin.ListAudit(
        admin_pb2.ListAuditRequest(action="dispatch.run_restore", limit=10),
        metadata=cast.metadata["super"],
        timeout=10,
    ).events
    by_op = [e for e in events if e.actor == "op"]
    assert by_op and not by_op[0].success
    asked = json.loads(by_op[0].details.split(" refused: ")[0])
    assert asked["run_restore"]["options"]["program_command"] == (
        "id > /tmp/comet-operator-was-here"
    )


@pytest.mark.parametrize(
    "command",
    [
        control_pb2.Command(
            browse_snapshot=control_pb2.BrowseSnapshotCommand(vault_id="v", snapshot_id="s")
        ),
        control_pb2.Command(
            search_snapshots=control_pb2.SearchSnapshotsCommand(
                vault_id="v", query=common_pb2.FindQuery(name_glob="*")
            )
        ),
        control_pb2.Command(browse_filesystem=control_pb2.BrowseFilesystemCommand(path="/")),
        control_pb2.Command(
            run_restore=control_pb2.RunRestoreCommand(
                vault_id="v",
                snapshot_id="s",
                options=common_pb2.RestoreOptions(destination="/tmp/elsewhere"),
            )
        ),
        control_pb2.Command(
            run_restore=control_pb2.RunRestoreCommand(
                vault_id="v",
                snapshot_id="s",
                options=common_pb2.RestoreOptions(
                    type=common_pb2.RESTORE_TYPE_ARCHIVE_FILE, destination="/tmp/a.tar"
                ),
            )
        ),
    ],
    ids=["browse", "search", "filesystem", "restore-elsewhere", "restore-archive"],
)
def test_admins_may_not_view_the_files_of_a_user_who_said_no(
    cast: Cast, command: control_pb2.Command
) -> None:
    for who in ("super", "operator"):
        refused = _dispatch(cast, who, command)
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        assert "does not allow administrators to view files" in refused.details()  # type: ignore[attr-defined]


def test_operators_cannot_destroy_backups_or_run_program_items(cast: Cast) -> None:
    for command in (
        control_pb2.Command(
            delete_snapshots=control_pb2.DeleteSnapshotsCommand(vault_id="v", snapshot_ids=["s"])
        ),
        control_pb2.Command(disconnect=control_pb2.Empty()),
        control_pb2.Command(import_settings=control_pb2.ImportSettingsCommand(source_id="x")),
        # An item the server does not know is judged as the most powerful it could be.
        control_pb2.Command(
            run_backup=control_pb2.RunBackupCommand(item_id="no-such", vault_id="v")
        ),
    ):
        refused = _dispatch(cast, "operator", command)
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, command  # type: ignore[attr-defined]
    # While a plain job passes the table (and fails only because the device is offline).
    offline = _dispatch(
        cast,
        "operator",
        control_pb2.Command(apply_retention=control_pb2.VaultJobCommand(vault_id="v")),
    )
    assert offline.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_backups_that_run_programs_are_for_super_admins_only(cast: Cast) -> None:
    device = cast.metadata["device"]
    profile = cast.stubs.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=device)
    plain = common_pb2.StorageVault(name="plain", type=common_pb2.VAULT_TYPE_LOCAL)
    plain.local.path = "/srv/plain"
    hooked = common_pb2.StorageVault(name="hooked", type=common_pb2.VAULT_TYPE_LOCAL)
    hooked.local.path = "/srv/hooked"
    hooked.pre_commands.append(common_pb2.ProgramCommand(command="systemctl stop db"))
    profile.vaults.extend([plain, hooked])
    profile.items.extend(
        [
            common_pb2.ProtectedItem(
                name="files", type=common_pb2.ITEM_TYPE_FILES, includes=["/srv/data"]
            ),
            common_pb2.ProtectedItem(
                name="dump",
                type=common_pb2.ITEM_TYPE_PROGRAM,
                program_command="pg_dumpall",
                program_save_as="all.sql",
            ),
        ]
    )
    saved = cast.stubs.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=profile), metadata=device
    )
    ids = {x.name: x.item_id for x in saved.items} | {v.name: v.vault_id for v in saved.vaults}
    # The server bound the vault's command to the device that set it.
    assert [c.owner_device_id for v in saved.vaults for c in v.pre_commands] == [cast.device_id]

    def backup(item: str, vault: str) -> control_pb2.Command:
        return control_pb2.Command(
            run_backup=control_pb2.RunBackupCommand(item_id=ids[item], vault_id=ids[vault])
        )

    for item, vault in (("dump", "plain"), ("files", "hooked")):
        refused = _dispatch(cast, "operator", backup(item, vault))
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, (item, vault)  # type: ignore[attr-defined]
        assert "command.run_program" in refused.details()  # type: ignore[attr-defined]
        # A SUPER admin passes; the offline device is what stops it here.
        offline = _dispatch(cast, "super", backup(item, vault))
        assert offline.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    offline = _dispatch(cast, "operator", backup("files", "plain"))
    assert offline.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
