"""The administrators' actions that change state, with their audit entries: one copy
shared by the gRPC AdminService and the web console/HTTP API (``comet.server.web``).

Callers have already passed the permission table for the action itself; a dispatched
command is judged here again by what it would do (``authorization.command_action``).
``source`` is the caller's address, for the audit log."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from comet.agent.credentials import KdfParams
from comet.server import authorization, document_bounds, validation
from comet.server.buckets.dispatch_grant import attach_delete_grant
from comet.server.buckets.errors import ObjectProtectedError
from comet.server.buckets.store import BucketStore
from comet.server.errors import (
    DeviceOfflineError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
)
from comet.server.rpc import command_facts, convert
from comet.server.rpc.audited import audited_from
from comet.server.rpc.routing import CommandRouter
from comet.server.store import profile_document
from comet.server.store.accounts import AccountStore, PasswordReset, Principal, Role, UserRecord
from comet.server.store.api_keys import ApiKeyRecord, ApiKeyStore, NewApiKey
from comet.server.store.jobs import JobRecord, JobStore
from comet.server.store.policies import PolicyRecord, PolicyStore
from comet.server.store.profiles import ProfileStore
from comet.v1 import common_pb2, control_pb2

T = TypeVar("T")
# What a user may start on their own device from the portal.
OWN_COMMANDS = frozenset({"run_backup"})


class Administration:
    def __init__(
        self,
        accounts: AccountStore,
        profiles: ProfileStore,
        policies: PolicyStore,
        jobs: JobStore,
        router: CommandRouter,
        buckets: BucketStore | None = None,
        *,
        api_keys: ApiKeyStore | None = None,
    ) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._policies = policies
        self._jobs = jobs
        self._router = router
        self._buckets = buckets
        self._api_keys = api_keys

    # ------------------------------------------------------------------ users

    async def add_user(
        self,
        admin: Principal,
        username: str,
        kdf: KdfParams,
        auth_key: bytes,
        *,
        role: Role = Role.USER,
        max_devices: int = 0,
        source: str,
    ) -> UserRecord:
        user = await self._accounts.create_user(
            username, kdf, auth_key, role=role, max_devices=max_devices
        )
        await self._accounts.audit(admin.username, "user.add", username, source=source)
        return user

    async def delete_user(
        self, admin: Principal, username: str, *, keep_data: bool, source: str
    ) -> list[str]:
        """Deletes the account, ends its devices' connections and deletes its buckets
        (unless ``keep_data``). Returns the ids of the buckets kept."""
        if username == admin.username:
            raise InvalidRequestError("an administrator cannot delete their own account")
        devices = await self._accounts.list_devices(username=username)
        bucket_ids = await self._orphan_buckets(username)
        await self._accounts.delete_user(username)
        for device in devices:
            await self._router.close_everywhere(device.device_id)
        freed, kept = await self._delete_buckets([] if keep_data else bucket_ids)
        if keep_data:
            details = f"kept {len(bucket_ids)} bucket(s)"
        else:
            details = f"deleted {len(bucket_ids) - len(kept)} bucket(s), {freed} bytes"
            if kept:
                details += (
                    f"; kept {len(kept)} immutable bucket(s) still under protection:"
                    f" {', '.join(kept)}"
                )
        await self._accounts.audit(
            admin.username, "user.delete", username, source=source, details=details
        )
        return bucket_ids if keep_data else kept

    async def reset_password(
        self,
        admin: Principal,
        username: str,
        kdf: KdfParams,
        auth_key: bytes,
        *,
        force: bool,
        revoke_devices: bool,
        source: str,
    ) -> PasswordReset:
        try:
            reset = await self._accounts.reset_password(
                username, kdf, auth_key, force=force, revoke_devices=revoke_devices
            )
        except ServerError as e:
            await self._accounts.audit(
                admin.username, "user.reset_password", username, source=source,
                success=False, details=e.message,
            )  # fmt: skip
            raise
        revoked = len(reset.revoked_devices)
        for device_id in reset.revoked_devices:
            await self._router.close_everywhere(device_id)
        details = (
            ("forced; " if force else "")
            + (f"revoked {revoked} device(s); " if revoke_devices else "")
            + "old backups unreadable without the old password"
        )
        await self._accounts.audit(
            admin.username, "user.reset_password", username, source=source, details=details
        )
        return reset

    async def reset_totp(self, admin: Principal, username: str, *, source: str) -> bool:
        """Turns a user's two-factor off (a lost authenticator); returns whether it
        was on. Audited with the real outcome."""
        try:
            was_enabled = await self._accounts.reset_totp(username)
        except ServerError as e:
            await self._accounts.audit(
                admin.username, "user.reset_totp", username, source=source,
                success=False, details=e.message,
            )  # fmt: skip
            raise
        await self._accounts.audit(
            admin.username, "user.reset_totp", username, source=source,
            details="two-factor turned off" if was_enabled else "two-factor was not enabled",
        )  # fmt: skip
        return was_enabled

    async def assign_policy(
        self, admin: Principal, username: str, policy_id: str, *, source: str
    ) -> None:
        validation.username(username)
        validation.text(policy_id, field="the policy id", max_len=validation.NAME_MAX)
        await self._policies.assign(username, policy_id or None)
        await self._accounts.audit(
            admin.username, "policy.assign", username, source=source,
            details=policy_id or "none (default policy applies)",
        )  # fmt: skip

    async def set_role(self, admin: Principal, username: str, role: Role, *, source: str) -> Role:
        """Gives an account another role (never one's own, never away from the last
        SUPER admin); returns the previous role. Audited with the real outcome."""
        try:
            validation.username(username)
            if username == admin.username:
                raise InvalidRequestError(
                    "an administrator cannot change their own role: ask another SUPER admin"
                )
            previous = await self._accounts.set_role(username, role)
        except ServerError as e:
            await self._accounts.audit(
                admin.username, "user.set_role", username, source=source,
                success=False, details=f"to {role.name.lower()} refused: {e.message}",
            )  # fmt: skip
            raise
        await self._accounts.audit(
            admin.username, "user.set_role", username, source=source,
            details=f"{previous.name.lower()} -> {role.name.lower()}",
        )  # fmt: skip
        return previous

    async def set_max_devices(
        self, admin: Principal, username: str, max_devices: int, *, source: str
    ) -> UserRecord:
        """The account's device limit (0: unlimited)."""
        validation.username(username)
        user = await self._accounts.set_max_devices(username, max_devices)
        await self._accounts.audit(
            admin.username, "user.edit", username, source=source,
            details=f"device limit {max_devices or 'unlimited'}",
        )  # fmt: skip
        return user

    # ------------------------------------------------------------------ policies

    async def put_policy(
        self, admin: Principal, policy: common_pb2.Policy, *, source: str
    ) -> PolicyRecord:
        """Creates (no id) or replaces a policy, after the checks every front end
        shares: the bounds of its fields, a name, a unique name, the version read.
        Refusals past the bounds are audited too."""
        action = "policy.edit" if policy.policy_id else "policy.create"
        # Out-of-bounds input is refused before anything is recorded, the audit included.
        document_bounds.check(policy, what="the policy")
        try:
            stored = await self._policies.put(convert.policy_from_proto(policy))
        except ServerError as e:
            await self._accounts.audit(
                admin.username, action, policy.policy_id or policy.name[:100], source=source,
                success=False, details=e.message,
            )  # fmt: skip
            raise
        default = " (default)" if stored.is_default else ""
        await self._accounts.audit(
            admin.username, action, stored.policy_id, source=source,
            details=f"{stored.name} v{stored.version}{default}",
        )  # fmt: skip
        return stored

    async def delete_policy(self, admin: Principal, policy_id: str, *, source: str) -> PolicyRecord:
        """Deletes a policy; its users fall back to the default policy."""
        validation.text(policy_id, field="the policy id", max_len=validation.NAME_MAX)
        policy = await self._policies.delete(policy_id)
        await self._accounts.audit(
            admin.username, "policy.delete", policy_id, source=source, details=policy.name
        )
        return policy

    # ------------------------------------------------------------------ devices

    async def revoke_device(self, admin: Principal, device_id: str, *, source: str) -> None:
        validation.device_id(device_id)
        await self._accounts.revoke_device(device_id)
        await self._router.close_everywhere(device_id)
        await self._accounts.audit(admin.username, "device.revoke", device_id, source=source)

    async def dispatch(
        self,
        admin: Principal,
        device_id: str,
        command: control_pb2.Command,
        *,
        source: str,
        timeout: float = 60,
        wait: bool = False,
    ) -> control_pb2.CommandReply:
        """Sends ``command`` to the device once the caller's role allows what it would
        do and the owner's privacy setting allows its result to be seen. Audited
        after the send, with its real outcome."""
        if command.WhichOneof("action") is None:
            raise InvalidRequestError("a dispatch needs a command")
        validation.device_id(device_id)
        document_bounds.check(command, what="the command")
        action = command.WhichOneof("action") or ""
        details = command_facts.details_of(command)
        document: dict[str, Any] = {}
        try:
            owner = await self._accounts.device_owner(device_id)
        except NotFoundError:
            owner = None  # refused below, once the caller's role is known to allow it
        if owner is not None and action in command_facts.NEEDS_PROFILE:
            document = (await self._profiles.get(owner, reveal_secrets=False)).document
        private = not profile_document.allows_admin_view_files(document)
        try:
            facts = command_facts.facts_of(command, document)
            authorization.require(
                authorization.caller_of(admin),
                authorization.command_action(facts),
                who=admin.username,
            )
            if owner is None:
                raise NotFoundError(
                    f"no device has the id {device_id!r}; 'comet-admin device list'"
                    " shows every device with its id"
                )
            if facts.shows_files and private:
                # Checked here as well as on the device: the user's privacy setting
                # must hold even against an agent that would answer.
                raise PermissionDeniedError(
                    "the user does not allow administrators to view files on their devices "
                    f"(a {action} command would show names or content of their files)"
                )
        except ServerError as e:
            await self._accounts.audit(
                admin.username, f"dispatch.{action}", device_id, source=source,
                success=False, details=f"{details} refused: {e.message}",
            )  # fmt: skip
            raise
        audit: dict[str, Any] = {
            "actor": admin.username, "action": f"dispatch.{action}", "target": device_id,
            "source": source, "details": details,
        }  # fmt: skip
        if action == "drop_connection":
            # Closing the server's side makes the agent reconnect.
            await audited_from(self._accounts, self._router.drop(device_id), **audit)
            return control_pb2.CommandReply(done=control_pb2.Empty())
        if action == "apply_retention":
            assert owner is not None
            view = await self._profiles.get(owner, reveal_secrets=False)
            await attach_delete_grant(
                command, role=admin.role, device_id=device_id,
                profile_document=view.document, buckets=self._buckets,
            )  # fmt: skip
        reply = await audited_from(
            self._accounts,
            self._router.send(device_id, command, timeout=min(timeout, 120)),
            refused=lambda r: f"the device answered: {r.error}" if r.error else "",
            **audit,
        )
        if wait and reply.HasField("job_started") and not reply.error:
            job = await self.wait_for_job(reply.job_started.job_id, timeout)
            reply.job_started.job.CopyFrom(convert.job_to_proto(job))
        return command_facts.redact_private(reply) if private else reply

    async def check_own_device(
        self, user: Principal, device_id: str, *, action: str, source: str, details: str = ""
    ) -> None:
        """Refuses (and audits) unless ``device_id`` is one of ``user``'s own devices
        and ``action`` a command a user may start on it (``OWN_COMMANDS``). Another
        account's device, or one that does not exist, is "not found" alike."""
        try:
            validation.device_id(device_id)
            if action not in OWN_COMMANDS:
                raise PermissionDeniedError(
                    f"a user may not send a {action or 'empty'} command from the portal"
                )
            try:
                owner = await self._accounts.device_owner(device_id)
            except NotFoundError:
                owner = ""
            if owner != user.user_id:
                raise NotFoundError(f"no device {device_id!r}")
        except ServerError as e:
            reason = f"{details} refused: {e.message}" if details else f"refused: {e.message}"
            await self._accounts.audit(
                user.username, f"own.{action}", device_id, source=source,
                success=False, details=reason,
            )  # fmt: skip
            raise

    async def dispatch_own(
        self, user: Principal, device_id: str, command: control_pb2.Command, *, source: str
    ) -> control_pb2.CommandReply:
        """A user's own command to one of their own devices (the customer portal's
        "back up now"). Only the kinds in ``OWN_COMMANDS``; a backup of any item,
        Program items included, since the user's own profile defines what it runs,
        exactly as when they start it on the device (whose own policy still applies
        there). Audited as ``own.<command>``."""
        action = command.WhichOneof("action") or ""
        document_bounds.check(command, what="the command")
        details = command_facts.details_of(command)
        await self.check_own_device(user, device_id, action=action, source=source, details=details)
        return await audited_from(
            self._accounts,
            self._router.send(device_id, command, timeout=30),
            refused=lambda r: f"the device answered: {r.error}" if r.error else "",
            actor=user.username, action=f"own.{action}", target=device_id, source=source,
            details=details,
        )  # fmt: skip

    async def wait_for_job(
        self, job_id: str, timeout: float, *, first_report: bool = False
    ) -> JobRecord:
        """Follow a dispatched job through the device's reports until it ends, or with
        ``first_report`` only until the server has its first report. The reports reach
        the database from whichever instance the device talks to."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                job, _ = await self._jobs.log(job_id)
                if first_report or not job.status.is_running:
                    return job
            except NotFoundError:
                pass  # the device has not reported the job yet
            if asyncio.get_running_loop().time() > deadline:
                raise DeviceOfflineError(
                    f"job {job_id} did not end within {timeout:.0f} s; it may still be running"
                )
            await asyncio.sleep(0.2 if first_report else 0.5)

    # ------------------------------------------------------------------ API keys

    def _key_store(self) -> ApiKeyStore:
        if self._api_keys is None:
            raise NotFoundError("this server has no API keys")
        return self._api_keys

    async def create_api_key(
        self, admin: Principal, *, name: str, role: Role, source: str
    ) -> NewApiKey:
        created = await self._key_store().create(admin, name=name, role=role)
        await self._accounts.audit(
            admin.username, "api_key.create", created.record.key_id, source=source,
            details=f"{created.record.name} ({created.record.role.name.lower()})",
        )  # fmt: skip
        return created

    async def api_keys(self, admin: Principal) -> list[ApiKeyRecord]:
        return await self._key_store().list(admin)

    async def revoke_api_key(self, admin: Principal, key_id: str, *, source: str) -> ApiKeyRecord:
        record = await self._key_store().revoke(admin, key_id)
        await self._accounts.audit(
            admin.username, "api_key.revoke", record.key_id, source=source, details=record.name
        )
        return record

    # ------------------------------------------------------------------ buckets

    async def _orphan_buckets(self, username: str) -> list[str]:
        if self._buckets is None:
            return []
        user_id = await self._accounts.user_id(username)
        return await self._buckets.orphan_buckets(user_id, username)

    async def _delete_buckets(self, bucket_ids: list[str]) -> tuple[int, list[str]]:
        """Delete the buckets; returns the bytes freed and the ids of those kept
        because they are immutable and still protected (listed as the user's former)."""
        if self._buckets is None:
            return 0, []
        freed = 0
        kept: list[str] = []
        for bucket_id in bucket_ids:
            try:
                freed += await self._buckets.delete_bucket(bucket_id)
            except NotFoundError:
                continue  # deleted meanwhile
            except ObjectProtectedError:
                kept.append(bucket_id)
        return freed, kept
