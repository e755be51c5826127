"""The user profile (items, vaults, schedules, policy) fetched from the server and
cached locally, so scheduled jobs keep running while the server is away. Edits are
read-modify-write with the profile version; a conflict re-reads and re-applies the
same edit once, never merging two writers' documents."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.agent.errors import AgentError
from comet.agent.state import AgentState
from comet.agent.transport import aio_channel, rpc_error_message
from comet.v1 import common_pb2, control_pb2, control_pb2_grpc

_CACHE_KEY = "profile"
# The server says this device may not have the profile: never fall back to the cache.
REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
FETCH_TIMEOUT = 15.0

log = logging.getLogger(__name__)


Metadata = tuple[tuple[str, str], ...]


class ProfileError(AgentError):
    code = "profile"


class ProfileConflictError(ProfileError):
    """The profile changed on the server since it was read; reload and redo the edit."""

    code = "profile.conflict"


class NotLoggedInError(AgentError):
    code = "not_logged_in"


class ProfileSync:
    def __init__(self, state: AgentState) -> None:
        self._state = state
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a newer profile is cached."""
        self._listeners.append(listener)

    def _cache(self, profile: common_pb2.Profile) -> None:
        self._state.put_blob(_CACHE_KEY, profile.SerializeToString())
        for listener in self._listeners:
            listener()

    def cached(self) -> common_pb2.Profile:
        raw = self._state.get_blob(_CACHE_KEY)
        profile = common_pb2.Profile()
        if raw:
            profile.ParseFromString(raw)
        return profile

    def _stub(self) -> tuple[grpc.aio.Channel, control_pb2_grpc.AgentServiceAsyncStub, Metadata]:
        login = self._state.load_login()
        if not login.logged_in:
            raise NotLoggedInError("this agent is not logged in: run 'comet login' first")
        channel = aio_channel(login.server)
        metadata = (("authorization", f"Bearer {login.device_token}"),)
        return channel, control_pb2_grpc.AgentServiceStub(channel), metadata

    async def fetch(self) -> common_pb2.Profile:
        """Fetch from the server and cache it. On any failure but a refusal of this
        device (revoked, logged out: the profile is no longer ours to use), the cached
        copy is used, so backups go on while the server is down or broken; with no
        cached copy yet, the failure is raised."""
        channel, stub, metadata = self._stub()
        try:
            profile = await stub.GetProfile(
                control_pb2.GetProfileRequest(), metadata=metadata, timeout=FETCH_TIMEOUT
            )
        except grpc.aio.AioRpcError as e:
            reason = rpc_error_message(e)
            if e.code() not in REFUSED and self._state.get_blob(_CACHE_KEY):
                log.info("using the cached profile: the server did not give it (%s)", reason)
                return self.cached()
            raise ProfileError(f"cannot read the profile: {reason}") from e
        finally:
            await channel.close()
        self._cache(profile)
        return profile

    async def save(self, profile: common_pb2.Profile) -> common_pb2.Profile:
        """Save a whole edited profile; a stale version is refused by the server with a
        conflict the caller must resolve by reloading (no retry here: the edit is not
        ours to redo)."""
        channel, stub, metadata = self._stub()
        try:
            saved = await stub.PutProfile(
                control_pb2.PutProfileRequest(profile=profile), metadata=metadata, timeout=30
            )
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.ABORTED:
                raise ProfileConflictError(rpc_error_message(e)) from e
            raise ProfileError(rpc_error_message(e)) from e
        finally:
            await channel.close()
        self._cache(saved)
        return saved

    async def devices(self) -> list[common_pb2.DeviceInfo]:
        channel, stub, metadata = self._stub()
        try:
            reply = await stub.ListDevices(
                control_pb2.ListAccountDevicesRequest(), metadata=metadata, timeout=30
            )
        except grpc.aio.AioRpcError as e:
            raise ProfileError(rpc_error_message(e)) from e
        finally:
            await channel.close()
        return list(reply.devices)

    async def account_jobs(self, job_filter: control_pb2.JobFilter) -> list[common_pb2.Job]:
        """Job history of every device of the account, from the server."""
        channel, stub, metadata = self._stub()
        try:
            reply = await stub.ListJobs(
                control_pb2.ListAccountJobsRequest(filter=job_filter),
                metadata=metadata,
                timeout=30,
            )
        except grpc.aio.AioRpcError as e:
            raise ProfileError(rpc_error_message(e)) from e
        finally:
            await channel.close()
        return list(reply.jobs)

    async def request_delete_grant(self, bucket_id: str, password: str) -> str:
        """A delete grant for an immutable bucket, for the password just re-entered."""
        login = self._state.load_login()
        channel, stub, metadata = self._stub()
        try:
            auth = control_pb2_grpc.AuthServiceStub(channel)
            pre = await auth.PreLogin(
                control_pb2.PreLoginRequest(username=login.username), timeout=30
            )
            kdf = KdfParams(pre.kdf.algorithm, pre.kdf.salt, pre.kdf.log2_n, pre.kdf.r, pre.kdf.p)
            secrets = await asyncio.to_thread(derive_login_secrets, password, kdf)
            if secrets.wrap_key != login.wrap_key:
                raise ProfileError("wrong password")
            reply = await stub.RequestDeleteGrant(
                control_pb2.DeleteGrantRequest(bucket_id=bucket_id, auth_key=secrets.auth_key),
                metadata=metadata,
                timeout=30,
            )
        except grpc.aio.AioRpcError as e:
            raise ProfileError(f"cannot get a delete grant: {rpc_error_message(e)}") from e
        finally:
            await channel.close()
        return reply.grant

    async def request_scheduled_delete_grant(self, bucket_id: str) -> str:
        """A delete grant for a scheduled retention of an immutable bucket: the server
        gives one only inside the retention window of the account's policy."""
        channel, stub, metadata = self._stub()
        try:
            reply = await stub.RequestDeleteGrant(
                control_pb2.DeleteGrantRequest(bucket_id=bucket_id, scheduled=True),
                metadata=metadata,
                timeout=30,
            )
        except grpc.aio.AioRpcError as e:
            raise ProfileError(f"cannot get a delete grant: {rpc_error_message(e)}") from e
        finally:
            await channel.close()
        return reply.grant

    async def create_bucket(
        self, *, quota_bytes: int = 0, immutable_seconds: int = 0
    ) -> tuple[str, str]:
        """Create a "Comet Server" vault bucket for this account on the server and
        return its ``(bucket_id, bucket_key)``; the key is shown only this once."""
        channel, stub, metadata = self._stub()
        try:
            reply = await stub.CreateBucket(
                control_pb2.CreateBucketRequest(
                    quota_bytes=quota_bytes, immutable_seconds=immutable_seconds
                ),
                metadata=metadata,
                timeout=30,
            )
        except grpc.aio.AioRpcError as e:
            raise ProfileError(f"cannot create a bucket: {rpc_error_message(e)}") from e
        finally:
            await channel.close()
        return reply.bucket_id, reply.bucket_key

    async def edit(self, change: Callable[[common_pb2.Profile], None]) -> common_pb2.Profile:
        """Apply ``change`` to the newest profile and save it with its version."""
        for attempt in range(2):
            channel, stub, metadata = self._stub()
            try:
                profile = await stub.GetProfile(
                    control_pb2.GetProfileRequest(), metadata=metadata, timeout=30
                )
                change(profile)
                saved = await stub.PutProfile(
                    control_pb2.PutProfileRequest(profile=profile), metadata=metadata, timeout=30
                )
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.ABORTED and attempt == 0:
                    continue  # someone else saved in between: redo the edit on theirs
                raise ProfileError(rpc_error_message(e)) from e
            finally:
                await channel.close()
            self._cache(saved)
            return saved
        raise ProfileError("the profile keeps changing; try again")
