"""Who may do what: the one permission table of the server (role x action), read by
every gRPC service through ``comet.server.rpc.auth_context`` and meant for every
other front end (the web console) alike. docs/permissions.md is this table in prose.

Pure: no grpc, no protobuf, no database. Callers identify the caller (a ``Caller``)
and name the ``Action``; this module answers allow, or raises the domain error that
the wire edge maps to UNAUTHENTICATED / PERMISSION_DENIED."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from comet.server.errors import AuthenticationError, PermissionDeniedError
from comet.server.store.accounts import Principal, Role


class Caller(StrEnum):
    """The kinds of credential a call can carry."""

    ANONYMOUS = "anonymous"  # no credential at all
    USER = "user"  # a session of an account opened without admin rights
    DEVICE = "device"  # a registered, unrevoked device's token
    SUPER = "super"  # admin session, SUPER_ADMIN role
    OPERATOR = "operator"  # admin session, OPERATOR role
    AUDITOR = "auditor"  # admin session, AUDITOR role
    BUCKET = "bucket"  # a "Comet Server" vault bucket's id and key


class Action(StrEnum):
    # AuthService
    LOGIN = "auth.login"
    LOGOUT = "auth.logout"
    PASSWORD_CHANGE_OWN = "auth.password.change_own"
    TOTP_MANAGE_OWN = "auth.totp.manage_own"
    # AgentService (a device, on its own account)
    PROFILE_READ_OWN = "device.profile.read"
    PROFILE_WRITE_OWN = "device.profile.write"
    JOB_REPORT = "device.job.report"
    DEVICE_LIST_OWN = "device.devices.list"
    JOB_LIST_OWN = "device.jobs.list"
    LIVE_CONNECT = "device.live.connect"
    BUCKET_CREATE = "device.bucket.create"
    # A delete grant for an immutable bucket, for the user's re-entered password.
    BUCKET_DELETE_GRANT_OWN = "device.bucket.delete_grant"
    # What a person did on the device (app locked/unlocked, agent disconnected), for the audit.
    DEVICE_EVENT_REPORT = "device.event.report"
    # StorageService
    OBJECT_READ = "storage.object.read"
    OBJECT_WRITE = "storage.object.write"
    # AdminService
    USER_ADD = "admin.user.add"
    USER_LIST = "admin.user.list"
    USER_DELETE = "admin.user.delete"
    PASSWORD_RESET = "admin.user.reset_password"
    TOTP_RESET = "admin.user.reset_totp"
    PROFILE_READ = "admin.profile.read"
    DEVICE_LIST = "admin.device.list"
    DEVICE_REVOKE = "admin.device.revoke"
    POLICY_READ = "admin.policy.read"
    POLICY_EDIT = "admin.policy.edit"
    JOB_READ = "admin.job.read"
    AUDIT_READ = "admin.audit.read"
    BUCKET_READ = "admin.bucket.read"
    BUCKET_DELETE = "admin.bucket.delete"
    # Immutable buckets: a delete grant for retention, and restoring from the trash.
    BUCKET_GRANT_DELETE = "admin.bucket.grant_delete"
    BUCKET_UNDELETE = "admin.bucket.undelete"
    DISPATCH = "admin.dispatch"  # the RPC; each command is then one of the below
    # NotificationService: mail and webhooks reach outside the server
    NOTIFY_MANAGE = "admin.notify.manage"
    # Commands sent to a device (AdminService.Dispatch)
    COMMAND_JOB = "command.job"  # backup of a Files item without programs, retention, verify…
    COMMAND_CONTROL = "command.control"  # refetch profile, cancel a job, drop connection
    COMMAND_RESTORE = "command.restore"  # files to their original paths, or a simulation
    COMMAND_VIEW_FILES = "command.view_files"  # browse/search/restore elsewhere or to an archive
    COMMAND_DESTROY = "command.destroy"  # delete snapshots, log the device out, move its server
    COMMAND_RUN_PROGRAM = "command.run_program"  # anything that runs a program on the device
    # Web console and HTTP API (comet.server.web)
    API_KEY_MANAGE_OWN = "admin.api_key.manage_own"  # an administrator's own API keys
    SERVER_READ = "admin.server.read"  # dashboard figures, server instances, schema revision
    PORTAL_READ_OWN = "portal.read_own"  # a user's own devices, jobs and logs in the portal
    PORTAL_BACKUP_OWN = "portal.backup_own"  # "back up now" on one of the user's own devices
    USER_EDIT = "admin.user.edit"  # an account's role and device limit


_ADMINS = frozenset({Caller.SUPER, Caller.OPERATOR, Caller.AUDITOR})
_SESSIONS = _ADMINS | {Caller.USER}
_SUPER = frozenset({Caller.SUPER})
_STAFF = frozenset({Caller.SUPER, Caller.OPERATOR})
_DEVICE = frozenset({Caller.DEVICE})
ANYONE = frozenset(Caller)

PERMISSIONS: dict[Action, frozenset[Caller]] = {
    Action.LOGIN: ANYONE,
    Action.LOGOUT: _SESSIONS | _DEVICE,
    Action.PASSWORD_CHANGE_OWN: _DEVICE,  # re-wrapping the vault keys needs the device
    Action.TOTP_MANAGE_OWN: _SESSIONS | _DEVICE,
    Action.PROFILE_READ_OWN: _DEVICE,
    Action.PROFILE_WRITE_OWN: _DEVICE,
    Action.JOB_REPORT: _DEVICE,
    Action.DEVICE_LIST_OWN: _DEVICE,
    Action.JOB_LIST_OWN: _DEVICE,
    Action.LIVE_CONNECT: _DEVICE,
    Action.BUCKET_CREATE: _DEVICE,
    Action.BUCKET_DELETE_GRANT_OWN: _DEVICE,
    Action.DEVICE_EVENT_REPORT: _DEVICE,
    Action.OBJECT_READ: frozenset({Caller.BUCKET}),
    Action.OBJECT_WRITE: frozenset({Caller.BUCKET}),
    Action.USER_ADD: _SUPER,
    Action.USER_LIST: _ADMINS,
    Action.USER_DELETE: _SUPER,
    Action.PASSWORD_RESET: _SUPER,
    Action.TOTP_RESET: _SUPER,
    Action.PROFILE_READ: _ADMINS,
    Action.DEVICE_LIST: _ADMINS,
    Action.DEVICE_REVOKE: _SUPER,
    Action.POLICY_READ: _ADMINS,
    Action.POLICY_EDIT: _SUPER,
    Action.JOB_READ: _ADMINS,
    Action.AUDIT_READ: frozenset({Caller.SUPER, Caller.AUDITOR}),
    Action.BUCKET_READ: _ADMINS,
    Action.BUCKET_DELETE: _SUPER,
    Action.BUCKET_GRANT_DELETE: _SUPER,
    Action.BUCKET_UNDELETE: _SUPER,
    Action.DISPATCH: _STAFF,
    Action.NOTIFY_MANAGE: _SUPER,
    Action.COMMAND_JOB: _STAFF,
    Action.COMMAND_CONTROL: _STAFF,
    Action.COMMAND_RESTORE: _STAFF,
    Action.COMMAND_VIEW_FILES: _STAFF,
    Action.COMMAND_DESTROY: _SUPER,
    Action.COMMAND_RUN_PROGRAM: _SUPER,
    Action.API_KEY_MANAGE_OWN: _ADMINS,
    Action.SERVER_READ: _ADMINS,
    Action.PORTAL_READ_OWN: frozenset({Caller.USER}),
    Action.PORTAL_BACKUP_OWN: frozenset({Caller.USER}),
    Action.USER_EDIT: _SUPER,
}

# Every RPC of every service, "Service/Method" -> the action it performs. A method
# missing here cannot be served: ``auth_context.guard`` refuses to register it.
RPC_ACTIONS: dict[str, Action] = {
    "AuthService/PreLogin": Action.LOGIN,
    "AuthService/Login": Action.LOGIN,
    "AuthService/Logout": Action.LOGOUT,
    "AuthService/ChangePassword": Action.PASSWORD_CHANGE_OWN,
    "AuthService/BeginTotpEnrolment": Action.TOTP_MANAGE_OWN,
    "AuthService/ConfirmTotpEnrolment": Action.TOTP_MANAGE_OWN,
    "AuthService/DisableTotp": Action.TOTP_MANAGE_OWN,
    "AgentService/GetProfile": Action.PROFILE_READ_OWN,
    "AgentService/PutProfile": Action.PROFILE_WRITE_OWN,
    "AgentService/ReportJob": Action.JOB_REPORT,
    "AgentService/ListDevices": Action.DEVICE_LIST_OWN,
    "AgentService/ListJobs": Action.JOB_LIST_OWN,
    "AgentService/Connect": Action.LIVE_CONNECT,
    "AgentService/CreateBucket": Action.BUCKET_CREATE,
    "AgentService/RequestDeleteGrant": Action.BUCKET_DELETE_GRANT_OWN,
    "AgentService/ReportDeviceEvent": Action.DEVICE_EVENT_REPORT,
    "StorageService/Put": Action.OBJECT_WRITE,
    "StorageService/Get": Action.OBJECT_READ,
    "StorageService/Stat": Action.OBJECT_READ,
    "StorageService/Delete": Action.OBJECT_WRITE,
    "StorageService/List": Action.OBJECT_READ,
    "StorageService/ExtendProtection": Action.OBJECT_WRITE,
    "AdminService/AddUser": Action.USER_ADD,
    "AdminService/ListUsers": Action.USER_LIST,
    "AdminService/DeleteUser": Action.USER_DELETE,
    "AdminService/ResetPassword": Action.PASSWORD_RESET,
    "AdminService/ResetUserTotp": Action.TOTP_RESET,
    "AdminService/GetUserProfile": Action.PROFILE_READ,
    "AdminService/ListDevices": Action.DEVICE_LIST,
    "AdminService/RevokeDevice": Action.DEVICE_REVOKE,
    "AdminService/PutPolicy": Action.POLICY_EDIT,
    "AdminService/ListPolicies": Action.POLICY_READ,
    "AdminService/DeletePolicy": Action.POLICY_EDIT,
    "AdminService/AssignPolicy": Action.POLICY_EDIT,
    "AdminService/ListJobs": Action.JOB_READ,
    "AdminService/GetJobLog": Action.JOB_READ,
    "AdminService/Dispatch": Action.DISPATCH,
    "AdminService/ListAudit": Action.AUDIT_READ,
    "AdminService/ListBuckets": Action.BUCKET_READ,
    "AdminService/DeleteBucket": Action.BUCKET_DELETE,
    "AdminService/GrantBucketDelete": Action.BUCKET_GRANT_DELETE,
    "AdminService/UndeleteObjects": Action.BUCKET_UNDELETE,
    "NotificationService/SetSmtpSettings": Action.NOTIFY_MANAGE,
    "NotificationService/GetSmtpSettings": Action.NOTIFY_MANAGE,
    "NotificationService/SendTestEmail": Action.NOTIFY_MANAGE,
    "NotificationService/AddEmailRecipient": Action.NOTIFY_MANAGE,
    "NotificationService/ListEmailRecipients": Action.NOTIFY_MANAGE,
    "NotificationService/DeleteEmailRecipient": Action.NOTIFY_MANAGE,
    "NotificationService/AddWebhook": Action.NOTIFY_MANAGE,
    "NotificationService/ListWebhooks": Action.NOTIFY_MANAGE,
    "NotificationService/DeleteWebhook": Action.NOTIFY_MANAGE,
    "NotificationService/ListDeliveries": Action.NOTIFY_MANAGE,
    "AdminService/CreateApiKey": Action.API_KEY_MANAGE_OWN,
    "AdminService/ListApiKeys": Action.API_KEY_MANAGE_OWN,
    "AdminService/RevokeApiKey": Action.API_KEY_MANAGE_OWN,
}

# Every route of the web console and HTTP API (``comet.server.web``), "METHOD /path"
# -> the action it performs, read by the same ``require`` as the RPCs. A route
# missing here cannot be served: the web app refuses to build.
HTTP_ACTIONS: dict[str, Action] = {
    "GET /api/v1/openapi.json": Action.LOGIN,
    "GET /api/v1/dashboard": Action.SERVER_READ,
    "GET /api/v1/server": Action.SERVER_READ,
    "GET /api/v1/users": Action.USER_LIST,
    "POST /api/v1/users": Action.USER_ADD,
    "GET /api/v1/users/{username}": Action.PROFILE_READ,
    "DELETE /api/v1/users/{username}": Action.USER_DELETE,
    "POST /api/v1/users/{username}/password": Action.PASSWORD_RESET,
    "POST /api/v1/users/{username}/totp-reset": Action.TOTP_RESET,
    "PUT /api/v1/users/{username}/policy": Action.POLICY_EDIT,
    "GET /api/v1/devices": Action.DEVICE_LIST,
    "POST /api/v1/devices/{device_id}/backup": Action.DISPATCH,
    "POST /api/v1/devices/{device_id}/cancel": Action.DISPATCH,
    "POST /api/v1/devices/{device_id}/revoke": Action.DEVICE_REVOKE,
    "GET /api/v1/jobs": Action.JOB_READ,
    "GET /api/v1/jobs.csv": Action.JOB_READ,
    "GET /api/v1/jobs/{job_id}": Action.JOB_READ,
    "GET /api/v1/policies": Action.POLICY_READ,
    "GET /api/v1/buckets": Action.BUCKET_READ,
    "GET /api/v1/audit": Action.AUDIT_READ,
    "GET /api/v1/api-keys": Action.API_KEY_MANAGE_OWN,
    "POST /api/v1/api-keys": Action.API_KEY_MANAGE_OWN,
    "DELETE /api/v1/api-keys/{key_id}": Action.API_KEY_MANAGE_OWN,
    "GET /api/v1/me/devices": Action.PORTAL_READ_OWN,
    "GET /api/v1/me/jobs": Action.PORTAL_READ_OWN,
    "GET /api/v1/me/jobs/{job_id}": Action.PORTAL_READ_OWN,
    "POST /api/v1/me/devices/{device_id}/backup": Action.PORTAL_BACKUP_OWN,
    "POST /api/v1/policies": Action.POLICY_EDIT,
    "PUT /api/v1/policies/{policy_id}": Action.POLICY_EDIT,
    "DELETE /api/v1/policies/{policy_id}": Action.POLICY_EDIT,
    "GET /api/v1/admins": Action.USER_LIST,
    "PUT /api/v1/users/{username}/role": Action.USER_EDIT,
    "PUT /api/v1/users/{username}/max-devices": Action.USER_EDIT,
    "POST /api/v1/devices/{device_id}/retention": Action.DISPATCH,
    "POST /api/v1/devices/{device_id}/verify": Action.DISPATCH,
    # The console's pages (server-rendered; forms post back with a CSRF token).
    "GET /": Action.LOGIN,  # sends each caller to its home page
    "GET /signin": Action.LOGIN,
    "POST /signin": Action.LOGIN,
    "POST /signout": Action.LOGOUT,
    "GET /dashboard": Action.SERVER_READ,
    "GET /server": Action.SERVER_READ,
    "GET /users": Action.USER_LIST,
    "POST /users": Action.USER_ADD,
    "GET /users/{username}": Action.PROFILE_READ,
    "POST /users/{username}/delete": Action.USER_DELETE,
    "POST /users/{username}/password": Action.PASSWORD_RESET,
    "POST /users/{username}/totp-reset": Action.TOTP_RESET,
    "POST /users/{username}/policy": Action.POLICY_EDIT,
    "GET /devices": Action.DEVICE_LIST,
    "POST /devices/{device_id}/backup": Action.DISPATCH,
    "POST /devices/{device_id}/cancel": Action.DISPATCH,
    "POST /devices/{device_id}/revoke": Action.DEVICE_REVOKE,
    "GET /jobs": Action.JOB_READ,
    "GET /jobs/{job_id}": Action.JOB_READ,
    "GET /jobs/{job_id}/events": Action.JOB_READ,  # live progress (Server-Sent Events)
    "GET /audit": Action.AUDIT_READ,
    "GET /policies": Action.POLICY_READ,
    "GET /buckets": Action.BUCKET_READ,
    "GET /api-keys": Action.API_KEY_MANAGE_OWN,
    "POST /api-keys": Action.API_KEY_MANAGE_OWN,
    "POST /api-keys/{key_id}/revoke": Action.API_KEY_MANAGE_OWN,
    "GET /portal": Action.PORTAL_READ_OWN,
    "GET /portal/jobs/{job_id}": Action.PORTAL_READ_OWN,
    "GET /portal/jobs/{job_id}/events": Action.PORTAL_READ_OWN,
    "POST /portal/devices/{device_id}/backup": Action.PORTAL_BACKUP_OWN,
    "POST /policies": Action.POLICY_EDIT,
    "GET /policies/{policy_id}": Action.POLICY_READ,
    "POST /policies/{policy_id}": Action.POLICY_EDIT,
    "POST /policies/{policy_id}/delete": Action.POLICY_EDIT,
    "GET /admins": Action.USER_LIST,
    "POST /admins": Action.USER_ADD,
    "POST /users/{username}/role": Action.USER_EDIT,
    "POST /users/{username}/edit": Action.USER_EDIT,
    "POST /devices/{device_id}/retention": Action.DISPATCH,
    "POST /devices/{device_id}/verify": Action.DISPATCH,
}

_ROLE_CALLERS = {
    Role.SUPER_ADMIN: Caller.SUPER,
    Role.OPERATOR: Caller.OPERATOR,
    Role.AUDITOR: Caller.AUDITOR,
}


def caller_of(principal: Principal) -> Caller:
    """The kind of caller a resolved credential is."""
    if principal.device_id is not None:
        return Caller.DEVICE
    if principal.admin_session and principal.role in _ROLE_CALLERS:
        return _ROLE_CALLERS[principal.role]
    return Caller.USER


def may_grant_key_role(owner: Role, key: Role) -> bool:
    """Whether an administrator of role ``owner`` may hold an API key acting as ``key``:
    a SUPER admin any administrator role, the others only their own (a key never
    does more than its owner could)."""
    if not (owner.is_admin and key.is_admin):
        return False
    return owner is Role.SUPER_ADMIN or owner is key


def allows(caller: Caller, action: Action) -> bool:
    return caller in PERMISSIONS[action]


def action_of_rpc(rpc: str) -> Action:
    """The action of ``"Service/Method"``; a method with no row is refused."""
    try:
        return RPC_ACTIONS[rpc]
    except KeyError:
        raise PermissionDeniedError(
            f"{rpc} has no row in the permission table, so nobody may call it"
        ) from None


def require(caller: Caller, action: Action, *, who: str = "") -> None:
    """Raises unless ``caller`` may perform ``action``: AuthenticationError when a
    credential (or an administrator session) would be needed, PermissionDeniedError
    when the caller is known but its role does not allow it."""
    allowed = PERMISSIONS[action]
    if caller in allowed:
        return
    if caller is Caller.ANONYMOUS:
        raise AuthenticationError("not logged in: this call needs a credential")
    # The wrong kind of credential altogether: another one is needed, not another role.
    if caller in (Caller.USER, Caller.DEVICE) and allowed <= _ADMINS:
        raise AuthenticationError("this call needs an administrator session")
    if caller in _SESSIONS and not allowed & _SESSIONS:
        needed = "bucket credentials" if allowed == {Caller.BUCKET} else "a device credential"
        raise AuthenticationError(f"this call needs {needed}, not a session")
    if caller is Caller.DEVICE and allowed == {Caller.BUCKET}:
        raise AuthenticationError("this call needs bucket credentials, not a device credential")
    label = f"the role of {who!r}" if who else f"a {caller.value} credential"
    raise PermissionDeniedError(
        f"{label} does not allow this action ({action.value}); "
        f"it needs one of: {', '.join(sorted(c.value for c in allowed))}"
    )


@dataclass(frozen=True)
class CommandFacts:
    """What a command sent to a device would do, as far as permissions go."""

    kind: str  # the command's name, e.g. "run_restore"
    runs_program: bool = False  # a program, a pre/post command, an import of settings
    shows_files: bool = False  # names or content of the user's files reach the admin
    destroys: bool = False  # deletes backups or ends the device's protection


_CONTROL = frozenset({"refetch_profile", "cancel_job", "drop_connection"})


def command_action(facts: CommandFacts) -> Action:
    """The action of a command: the most powerful thing it would do."""
    if facts.runs_program:
        return Action.COMMAND_RUN_PROGRAM
    if facts.destroys:
        return Action.COMMAND_DESTROY
    if facts.shows_files:
        return Action.COMMAND_VIEW_FILES
    if facts.kind in _CONTROL:
        return Action.COMMAND_CONTROL
    if facts.kind == "run_restore":
        return Action.COMMAND_RESTORE
    return Action.COMMAND_JOB
