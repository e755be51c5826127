"""``AgentClient``: the app's only way to the local agent.

Wraps the agent's local API (gRPC over a unix socket). Every call runs on a worker
thread of a private ``QThreadPool`` and answers through Qt signals delivered on the UI
thread: each call returns a ``Pending`` whose ``finished`` carries a record (see
``records``) and whose ``failed`` carries an ``ApiError`` with a readable message. The
job event stream runs on its own ``QThread`` and reconnects when the agent restarts.

This is the one GUI module that imports grpc and the generated protobuf code; views,
models and dialogs must not.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from PyQt6.QtCore import QObject, QRunnable, QThread, QThreadPool, pyqtSignal

from comet.gui import convert
from comet.gui import records as r
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc, common_pb2

_CHANNEL_OPTIONS = [
    # The agent may restart under us: come back quickly instead of backing off for minutes.
    ("grpc.initial_reconnect_backoff_ms", 300),
    ("grpc.min_reconnect_backoff_ms", 300),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
_SHORT = 30.0
_LONG = 300.0


@dataclass(frozen=True)
class ApiError:
    """A failed call, ready to show: ``kind`` is the gRPC status name."""

    operation: str
    kind: str
    message: str

    @property
    def unimplemented(self) -> bool:
        return self.kind == "UNIMPLEMENTED"

    @property
    def unavailable(self) -> bool:
        return self.kind == "UNAVAILABLE"

    @property
    def two_factor_required(self) -> bool:
        text = self.message.lower()
        return "two-factor code required" in text or "totp_required" in text

    @property
    def conflict(self) -> bool:
        """The profile changed elsewhere since the edit started: reload, then edit."""
        return self.kind == "ABORTED" or "changed since you read it" in self.message.lower()

    def __str__(self) -> str:
        return self.message


class _Gone(Exception):
    """What the user edited no longer exists in the freshly fetched profile."""


class Pending(QObject):
    """One call in flight. Exactly one of the two signals fires, on the UI thread."""

    finished = pyqtSignal(object)
    failed = pyqtSignal(object)

    def __init__(self, operation: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.operation = operation

    def then(
        self, on_ok: Callable[[Any], None], on_error: Callable[[ApiError], None] | None = None
    ) -> Pending:
        self.finished.connect(on_ok)
        if on_error is not None:
            self.failed.connect(on_error)
        return self


class _Bridge(QObject):
    """Lives on the UI thread; worker threads emit through it (queued delivery)."""

    done = pyqtSignal(int, object)
    failed = pyqtSignal(int, object)


class _Call(QRunnable):
    def __init__(
        self, call_id: int, operation: str, fn: Callable[[], Any], bridge: _Bridge, socket: Path
    ) -> None:
        super().__init__()
        self._id = call_id
        self._operation = operation
        self._fn = fn
        self._bridge = bridge
        self._socket = socket

    def run(self) -> None:
        try:
            result = self._fn()
        except grpc.RpcError as e:
            self._bridge.failed.emit(self._id, rpc_error(self._operation, e, self._socket))
        except _Gone as e:
            self._bridge.failed.emit(self._id, ApiError(self._operation, "NOT_FOUND", str(e)))
        except Exception as e:  # a bug must not kill the worker silently: show it
            self._bridge.failed.emit(
                self._id, ApiError(self._operation, "INTERNAL", f"{self._operation} failed: {e}")
            )
        else:
            self._bridge.done.emit(self._id, result)


def rpc_error(operation: str, error: grpc.RpcError, socket: Path) -> ApiError:
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or ""
    kind = code.name if code is not None else "UNKNOWN"
    if code == grpc.StatusCode.UNAVAILABLE:
        message = (
            f"The Comet agent is not answering on {socket}. Start it with "
            "'comet-agent run'; the app reconnects by itself."
        )
    elif code == grpc.StatusCode.UNIMPLEMENTED:
        message = f"This agent does not offer '{operation}' yet (it needs a newer agent)."
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"The agent did not answer '{operation}' in time."
    else:
        message = details or f"{operation} failed ({kind.lower()})"
    return ApiError(operation, kind, message)


class _JobWatcher(QThread):
    """Follows ``WatchJobs`` for every job; reopens it whenever the agent comes back."""

    job_event = pyqtSignal(object)
    link = pyqtSignal(bool)

    def __init__(self, stub: agent_api_pb2_grpc.AgentApiStub) -> None:
        super().__init__()
        self._stub = stub
        self._stopping = threading.Event()
        self._call: Any = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        self.wait(5000)

    def run(self) -> None:
        linked: bool | None = None
        while not self._stopping.is_set():
            try:
                self._stub.Status(agent_api_pb2.StatusRequest(), timeout=2)
                stream = self._stub.WatchJobs(agent_api_pb2.WatchJobsRequest())
                with self._lock:
                    self._call = stream
                if self._stopping.is_set():
                    stream.cancel()
                if linked is not True:
                    linked = True
                    self.link.emit(True)
                for message in stream:
                    self.job_event.emit(convert.event_from_proto(message))
            except grpc.RpcError:
                pass
            finally:
                with self._lock:
                    self._call = None
            if self._stopping.is_set():
                break
            if linked is not False:
                linked = False
                self.link.emit(False)
            self._stopping.wait(0.5)


class AgentClient(QObject):
    """The local API as signals. Create it on the UI thread; call ``close`` at exit."""

    status_changed = pyqtSignal(object)  # AgentStatus
    profile_changed = pyqtSignal(object)  # Profile
    job_event = pyqtSignal(object)  # JobEvent
    connection_changed = pyqtSignal(bool)  # the agent answers (again) / stopped answering
    call_failed = pyqtSignal(object)  # ApiError, for every failed call

    def __init__(self, socket_path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.socket_path = socket_path
        self._channel = grpc.insecure_channel(f"unix:{socket_path}", options=_CHANNEL_OPTIONS)
        self._stub = agent_api_pb2_grpc.AgentApiStub(self._channel)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(4)
        self._bridge = _Bridge(self)
        self._bridge.done.connect(self._deliver)
        self._bridge.failed.connect(self._deliver_error)
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._raw_profile: common_pb2.Profile | None = None
        self._raw_lock = threading.Lock()
        self._watcher: _JobWatcher | None = None
        self._closed = False
        self.status_snapshot = r.AgentStatus()
        self.profile_snapshot: r.Profile | None = None

    # ------------------------------------------------------------ plumbing

    def _submit(self, operation: str, fn: Callable[[], Any]) -> Pending:
        pending = Pending(operation, self)
        if self._closed:
            # A window's timer may still fire after the app closed its client: a call on
            # the closed channel from a pool thread can crash grpc, so it is not made.
            return pending
        call_id = next(self._ids)
        self._pending[call_id] = pending
        self._pool.start(_Call(call_id, operation, fn, self._bridge, self.socket_path))
        return pending

    def _deliver(self, call_id: int, result: object) -> None:
        pending = self._pending.pop(call_id, None)
        if isinstance(result, r.AgentStatus):
            self._set_status(result)
        elif isinstance(result, r.LoginResult):
            self._set_status(result.status)
        elif isinstance(result, r.Profile):
            self.profile_snapshot = result
            self.profile_changed.emit(result)
        if pending is not None:
            pending.finished.emit(result)
            pending.deleteLater()

    def _deliver_error(self, call_id: int, error: object) -> None:
        pending = self._pending.pop(call_id, None)
        assert isinstance(error, ApiError)
        self.call_failed.emit(error)
        if error.unavailable:
            self.connection_changed.emit(False)
        if pending is not None:
            pending.failed.emit(error)
            pending.deleteLater()

    def _set_status(self, status: r.AgentStatus) -> None:
        self.status_snapshot = status
        self.status_changed.emit(status)

    def start_watching(self) -> None:
        """Start following job events (idempotent)."""
        if self._watcher is not None:
            return
        self._watcher = _JobWatcher(self._stub)
        self._watcher.job_event.connect(self.job_event)
        self._watcher.link.connect(self.connection_changed)
        self._watcher.start()

    def close(self) -> None:
        self._closed = True
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        self._pool.waitForDone(10_000)
        self._channel.close()

    # ------------------------------------------------------------ login state

    def status(self) -> Pending:
        def call() -> r.AgentStatus:
            msg = self._stub.Status(agent_api_pb2.StatusRequest(), timeout=_SHORT)
            return convert.status_from_proto(msg)

        return self._submit("Status", call)

    def login(
        self,
        *,
        server: str,
        username: str,
        password: str,
        totp_code: str = "",
        device_name: str = "",
        trust_fingerprint: str = "",
    ) -> Pending:
        request = agent_api_pb2.AgentLoginRequest(
            server=server,
            username=username,
            password=password,
            totp_code=totp_code,
            device_name=device_name,
            trust_fingerprint=trust_fingerprint,
        )

        def call() -> r.LoginResult:
            reply = self._stub.Login(request, timeout=120)
            return r.LoginResult(
                convert.status_from_proto(reply.status), reply.device_registered_now
            )

        return self._submit("Login", call)

    def server_certificate(self, server: str) -> Pending:
        """The certificate an https server presents (for the person to confirm)."""

        def call() -> r.ServerCertificate:
            msg = self._stub.ServerCertificate(
                agent_api_pb2.ServerCertificateRequest(server=server), timeout=30
            )
            return r.ServerCertificate(
                secure=msg.secure,
                fingerprint=msg.fingerprint,
                verified=msg.verified,
                pinned_fingerprint=msg.pinned_fingerprint,
                problem=msg.problem,
            )

        return self._submit("ServerCertificate", call)

    def lock(self) -> Pending:
        def call() -> r.AgentStatus:
            msg = self._stub.Lock(agent_api_pb2.LockRequest(), timeout=_SHORT)
            return convert.status_from_proto(msg)

        return self._submit("Lock", call)

    def disconnect_agent(self) -> Pending:
        def call() -> r.AgentStatus:
            msg = self._stub.Disconnect(agent_api_pb2.DisconnectRequest(), timeout=_SHORT)
            return convert.status_from_proto(msg)

        return self._submit("Disconnect", call)

    # ------------------------------------------------------------ profile

    def get_profile(self, *, refetch: bool = True) -> Pending:
        def call() -> r.Profile:
            msg = self._stub.GetProfile(
                agent_api_pb2.LocalProfileRequest(refetch=refetch), timeout=60
            )
            with self._raw_lock:
                self._raw_profile = msg
            return convert.profile_from_proto(msg)

        return self._submit("GetProfile", call)

    def add_item(self, item: r.ProtectedItem) -> Pending:
        request = agent_api_pb2.AddItemRequest(item=convert.item_to_proto(item))

        def call() -> r.ProtectedItem:
            return convert.item_from_proto(self._stub.AddItem(request, timeout=60))

        return self._submit("AddItem", call)

    def add_item_with_schedules(
        self, item: r.ProtectedItem, schedules: tuple[r.Schedule, ...]
    ) -> Pending:
        """AddItem, then AddSchedule for each of its schedules (a new item has no id yet)."""
        request = agent_api_pb2.AddItemRequest(item=convert.item_to_proto(item))

        def call() -> r.ProtectedItem:
            added = self._stub.AddItem(request, timeout=60)
            for schedule in schedules:
                msg = convert.schedule_to_proto(schedule)
                msg.item_id = added.item_id
                self._stub.AddSchedule(agent_api_pb2.AddScheduleRequest(schedule=msg), timeout=60)
            return convert.item_from_proto(added)

        return self._submit("AddItem", call)

    def save_item(
        self, item: r.ProtectedItem, schedules: tuple[r.Schedule, ...], *, base_version: int
    ) -> Pending:
        """Replace an existing item and its (editable) schedules through SaveProfile.

        ``base_version`` is the profile version the edit started from: the server
        refuses the save if the profile changed since (``ApiError.conflict``)."""

        def change(profile: common_pb2.Profile) -> None:
            for i, old in enumerate(profile.items):
                if old.item_id == item.item_id:
                    profile.items[i].CopyFrom(convert.item_to_proto(item, old))
                    break
            else:
                raise _Gone(f"The Protected Item “{item.name}” was deleted elsewhere.")
            olds = {s.schedule_id: s for s in profile.schedules}
            kept = [
                s
                for s in profile.schedules
                if s.item_id != item.item_id or convert.schedule_from_proto(s) is None
            ]
            fresh = [convert.schedule_to_proto(s, olds.get(s.schedule_id)) for s in schedules]
            del profile.schedules[:]
            profile.schedules.extend(kept + fresh)

        return self._edit_profile("SaveProfile", base_version, change)

    def delete_item(self, item_id: str, *, base_version: int) -> Pending:
        """Remove an item and its schedules; its snapshots stay (as unknown items)."""

        def change(profile: common_pb2.Profile) -> None:
            items = [i for i in profile.items if i.item_id != item_id]
            schedules = [s for s in profile.schedules if s.item_id != item_id]
            del profile.items[:]
            profile.items.extend(items)
            del profile.schedules[:]
            profile.schedules.extend(schedules)

        return self._edit_profile("SaveProfile", base_version, change)

    def add_vault(self, vault: r.StorageVault) -> Pending:
        request = agent_api_pb2.AddVaultRequest(vault=convert.vault_to_proto(vault))

        def call() -> r.StorageVault:
            return convert.vault_from_proto(self._stub.AddVault(request, timeout=120))

        return self._submit("AddVault", call)

    def sftp_host_key(self, host: str, port: int, *, expected: str = "") -> Pending:
        """The host key an SFTP server presents (for the person to confirm before a vault
        pins it); with ``expected`` (a key or fingerprint typed in), whether it is that."""

        def call() -> r.SftpHostKey:
            msg = self._stub.SftpHostKey(
                agent_api_pb2.SftpHostKeyRequest(host=host, port=port, expected=expected),
                timeout=30,
            )
            return r.SftpHostKey(msg.host_key, msg.fingerprint, msg.key_type, msg.matches)

        return self._submit("SftpHostKey", call)

    def save_vault(self, vault: r.StorageVault, *, base_version: int) -> Pending:
        """Rename, re-quota or change the default retention of an existing vault."""

        def change(profile: common_pb2.Profile) -> None:
            for v in profile.vaults:
                if v.vault_id == vault.vault_id:
                    v.name = vault.name
                    v.quota_bytes = vault.quota_bytes
                    if not vault.default_retention.custom:
                        v.default_retention.CopyFrom(
                            convert.retention_to_proto(vault.default_retention)
                        )
                    return
            raise _Gone(f"The Storage Vault “{vault.name}” was deleted elsewhere.")

        return self._edit_profile("SaveProfile", base_version, change)

    def delete_vault(self, vault_id: str, *, base_version: int) -> Pending:
        """Remove a vault from the account, with its schedules and retention overrides.
        The stored data itself is not touched."""

        def change(profile: common_pb2.Profile) -> None:
            vaults = [v for v in profile.vaults if v.vault_id != vault_id]
            schedules = [s for s in profile.schedules if s.vault_id != vault_id]
            del profile.vaults[:]
            profile.vaults.extend(vaults)
            del profile.schedules[:]
            profile.schedules.extend(schedules)
            for item in profile.items:
                if vault_id in item.retention_overrides:
                    del item.retention_overrides[vault_id]

        return self._edit_profile("SaveProfile", base_version, change)

    def save_settings(self, settings: r.AccountSettings, *, base_version: int) -> Pending:
        def change(profile: common_pb2.Profile) -> None:
            profile.settings.CopyFrom(convert.settings_to_proto(settings))

        return self._edit_profile("SaveProfile", base_version, change)

    def _edit_profile(
        self, operation: str, base_version: int, change: Callable[[common_pb2.Profile], None]
    ) -> Pending:
        """Fetch the profile, apply ``change``, save it with the version the user's
        edit started from (0: the fetched one), so a concurrent change is refused."""

        def call() -> r.Profile:
            msg = self._stub.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=60)
            profile = common_pb2.Profile()
            profile.CopyFrom(msg)
            change(profile)
            if base_version:
                profile.version = base_version
            saved = self._stub.SaveProfile(
                agent_api_pb2.SaveProfileRequest(profile=profile), timeout=60
            )
            with self._raw_lock:
                self._raw_profile = saved
            return convert.profile_from_proto(saved)

        return self._submit(operation, call)

    def change_password(self, current: str, new: str) -> Pending:
        request = agent_api_pb2.LocalChangePasswordRequest(
            current_password=current, new_password=new
        )

        def call() -> r.AgentStatus:
            return convert.status_from_proto(self._stub.ChangePassword(request, timeout=120))

        return self._submit("ChangePassword", call)

    def begin_totp(self) -> Pending:
        """A new two-factor secret (``TotpEnrolment``) for the account."""

        def call() -> r.TotpEnrolment:
            reply = self._stub.BeginTotp(agent_api_pb2.LocalBeginTotpRequest(), timeout=60)
            return r.TotpEnrolment(reply.secret, reply.otpauth_uri)

        return self._submit("BeginTotp", call)

    def confirm_totp(self, code: str) -> Pending:
        request = agent_api_pb2.LocalTotpCodeRequest(code=code)
        return self._submit(
            "ConfirmTotp",
            lambda: convert.status_from_proto(self._stub.ConfirmTotp(request, timeout=60)),
        )

    def disable_totp(self, code: str) -> Pending:
        request = agent_api_pb2.LocalTotpCodeRequest(code=code)
        return self._submit(
            "DisableTotp",
            lambda: convert.status_from_proto(self._stub.DisableTotp(request, timeout=60)),
        )

    def unlock(self, password: str) -> Pending:
        """Check the password on the device (and clear a Lock)."""
        request = agent_api_pb2.UnlockRequest(password=password)

        def call() -> r.AgentStatus:
            return convert.status_from_proto(self._stub.Unlock(request, timeout=60))

        return self._submit("Unlock", call)

    def list_devices(self) -> Pending:
        def call() -> list[r.Device]:
            reply = self._stub.ListDevices(agent_api_pb2.LocalDevicesRequest(), timeout=_SHORT)
            return [convert.device_from_proto(d) for d in reply.devices]

        return self._submit("ListDevices", call)

    def list_import_sources(self) -> Pending:
        def call() -> list[r.ImportSource]:
            reply = self._stub.ListImportSources(
                agent_api_pb2.ListImportSourcesRequest(), timeout=_SHORT
            )
            return [convert.import_source_from_proto(s) for s in reply.sources]

        return self._submit("ListImportSources", call)

    def start_import(self, source_id: str) -> Pending:
        request = agent_api_pb2.StartVaultJobRequest(import_source_id=source_id)
        request.classification = common_pb2.JOB_CLASSIFICATION_IMPORT

        def call() -> r.Job:
            return convert.job_from_proto(self._stub.StartVaultJob(request, timeout=60))

        return self._submit("StartVaultJob", call)

    # ------------------------------------------------------------ jobs

    def start_backup(self, item_id: str, vault_id: str) -> Pending:
        request = agent_api_pb2.StartBackupRequest(item_id=item_id, vault_id=vault_id)

        def call() -> r.Job:
            return convert.job_from_proto(self._stub.StartBackup(request, timeout=60))

        return self._submit("StartBackup", call)

    def start_restore(self, spec: r.RestoreSpec) -> Pending:
        request = convert.restore_to_proto(spec)

        def call() -> r.Job:
            return convert.job_from_proto(self._stub.StartRestore(request, timeout=120))

        return self._submit("StartRestore", call)

    def start_vault_job(
        self,
        vault_id: str,
        classification: r.Classification,
        *,
        snapshot_ids: tuple[str, ...] = (),
        read_data: bool = False,
    ) -> Pending:
        request = agent_api_pb2.StartVaultJobRequest(
            vault_id=vault_id, snapshot_ids=list(snapshot_ids), read_data=read_data
        )
        request.classification = classification.value  # type: ignore[assignment]

        def call() -> r.Job:
            return convert.job_from_proto(self._stub.StartVaultJob(request, timeout=60))

        return self._submit("StartVaultJob", call)

    def cancel_job(self, job_id: str) -> Pending:
        def call() -> r.Job:
            msg = self._stub.CancelJob(
                agent_api_pb2.CancelLocalJobRequest(job_id=job_id), timeout=_SHORT
            )
            return convert.job_from_proto(msg)

        return self._submit("CancelJob", call)

    def history(self, *, all_devices: bool = False, limit: int = 500) -> Pending:
        request = agent_api_pb2.HistoryRequest(all_devices=all_devices, limit=limit)

        def call() -> list[r.Job]:
            reply = self._stub.History(request, timeout=60)
            return [convert.job_from_proto(j) for j in reply.jobs]

        return self._submit("History", call)

    def job_log(self, job_id: str) -> Pending:
        def call() -> r.JobLog:
            reply = self._stub.JobLog(agent_api_pb2.JobLogRequest(job_id=job_id), timeout=60)
            return convert.job_log_from_proto(reply)

        return self._submit("JobLog", call)

    # ------------------------------------------------------------ snapshots

    def list_snapshots(
        self, vault_id: str, *, all_devices: bool = False, unknown_items: bool = False
    ) -> Pending:
        request = agent_api_pb2.ListLocalSnapshotsRequest(
            vault_id=vault_id, all_devices=all_devices, unknown_items=unknown_items
        )

        def call() -> list[r.Snapshot]:
            reply = self._stub.ListSnapshots(request, timeout=_LONG)
            return [convert.snapshot_from_proto(s) for s in reply.snapshots]

        return self._submit("ListSnapshots", call)

    def mount_snapshot(self, vault_id: str, snapshot_id: str, mountpoint: str) -> Pending:
        """Ask the agent to serve one snapshot read-only at ``mountpoint`` (an empty
        directory) until ``unmount``; answers with the folder holding the snapshot."""
        request = agent_api_pb2.MountRequest(
            vault_id=vault_id,
            mountpoint=mountpoint,
            snapshot_id=snapshot_id,
            all_devices=True,
            detach=True,
        )

        def call() -> str:
            for event in self._stub.Mount(request, timeout=_LONG):
                if event.mounted:
                    by_item = os.path.join(event.mountpoint, "by-item")
                    items = os.listdir(by_item)
                    if len(items) == 1:
                        return os.path.realpath(os.path.join(by_item, items[0], "latest"))
                    return by_item
            raise _Gone("the agent ended the mount before it was ready")

        return self._submit("Mount", call)

    def unmount(self, mountpoint: str) -> Pending:
        request = agent_api_pb2.UnmountRequest(mountpoint=mountpoint)

        def call() -> None:
            self._stub.Unmount(request, timeout=_LONG)

        return self._submit("Unmount", call)

    def list_dir(self, vault_id: str, snapshot_id: str, path: str) -> Pending:
        request = agent_api_pb2.ListDirRequest(
            vault_id=vault_id, snapshot_id=snapshot_id, path=path
        )

        def call() -> list[r.SnapshotEntry]:
            reply = self._stub.ListDir(request, timeout=_LONG)
            return [convert.entry_from_proto(e) for e in reply.entries]

        return self._submit("ListDir", call)

    def find(self, vault_id: str, snapshot_ids: tuple[str, ...], query: r.FindQuery) -> Pending:
        """Search the given snapshots (none: every snapshot in the vault)."""
        request = agent_api_pb2.FindRequest(
            vault_id=vault_id,
            snapshot_ids=list(snapshot_ids),
            query=convert.find_query_to_proto(query),
        )

        def call() -> r.SearchResult:
            return convert.search_from_proto(self._stub.Find(request, timeout=_LONG))

        return self._submit("Find", call)
