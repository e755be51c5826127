"""The agent's side of the Comet Server: login and the live connection.

The agent dials out and holds one bidirectional stream (works behind NAT),
reconnecting with jittered exponential backoff. Commands arriving on the stream
are handed to a ``CommandHandler``; its replies travel back on the same stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import grpc

from comet.agent import __version__
from comet.agent.backoff import Backoff
from comet.agent.certificate_trust import (
    PresentedCertificate,
    decide_trust,
    explain_refused_certificate,
    probe_certificate,
)
from comet.agent.credentials import (
    KdfParams,
    derive_login_secrets,
    require_no_downgrade,
    unwrap_secret,
    wrap_secret,
)
from comet.agent.errors import AgentError, LocalPathError
from comet.agent.state import AgentState, LoginState
from comet.agent.transport import (
    ServerTrust,
    aio_channel,
    certificate_fingerprint,
    parse_server_url,
    refused_certificate,
    rpc_error_message,
)
from comet.v1 import common_pb2, control_pb2, control_pb2_grpc

log = logging.getLogger(__name__)

CommandHandler = Callable[[control_pb2.Command], Awaitable[control_pb2.CommandReply]]


class LoginError(AgentError):
    code = "login"


@dataclass(frozen=True)
class LoginOutcome:
    login: LoginState
    device_registered_now: bool


def local_timezone() -> str:
    try:
        return os.path.realpath("/etc/localtime").split("zoneinfo/", 1)[1]
    except (IndexError, OSError):
        return time.strftime("%Z")


async def login(
    state: AgentState,
    server: str,
    username: str,
    password: str,
    *,
    totp_code: str = "",
    device_name: str = "",
    ca_pem: bytes = b"",
    trust_fingerprint: str = "",
) -> LoginOutcome:
    """Log in to the server; register this device on the first login of this user here.

    Over https the server's certificate must be valid under ``ca_pem`` or the system
    roots, or else be pinned: the pin recorded here for this server must match, or
    the person confirmed exactly this fingerprint (``trust_fingerprint``). Nothing
    but the TLS handshake reaches a server that fails this check."""
    address = parse_server_url(server)
    previous = state.load_login()
    trust: ServerTrust | None = None
    if address.secure:
        presented = await asyncio.to_thread(probe_certificate, address.url, ca_pem=ca_pem)
        trust = decide_trust(
            address.url,
            presented,
            ca_pem=ca_pem,
            pinned_pem=state.get_blob(_pin_key(address.url)) or b"",
            confirmed=trust_fingerprint,
        )
    channel = aio_channel(address.url, trust=trust)
    try:
        auth = control_pb2_grpc.AuthServiceStub(channel)
        pre = await auth.PreLogin(control_pb2.PreLoginRequest(username=username), timeout=30)
        kdf = KdfParams(pre.kdf.algorithm, pre.kdf.salt, pre.kdf.log2_n, pre.kdf.r, pre.kdf.p)
        require_no_downgrade(recorded_kdf(state, address.url, username), kdf)
        secrets = await asyncio.to_thread(derive_login_secrets, password, kdf)
        name = device_name or previous.device_name or socket.gethostname()
        reply = await auth.Login(
            control_pb2.LoginRequest(
                username=username,
                auth_key=secrets.auth_key,
                totp_code=totp_code,
                device_id=previous.device_id,
                registration=control_pb2.DeviceRegistration(
                    name=name,
                    os=platform.system().lower(),
                    arch=platform.machine(),
                    timezone=local_timezone(),
                    client_version=__version__,
                ),
            ),
            timeout=30,
        )
    except grpc.aio.AioRpcError as e:
        raise LoginError(rpc_error_message(e)) from e
    finally:
        await channel.close()
    login_state = LoginState(
        server=address.url,
        username=username,
        device_id=reply.device_id,
        device_token=reply.device_token,
        wrap_key=secrets.wrap_key,
        device_name=name,
        locked=False,
        tls_root_pem=trust.root_pem if trust else b"",
        tls_pinned=trust.pinned if trust else False,
        tls_name_override=trust.name_override if trust else "",
    )
    state.save_login(login_state)
    if trust is not None and trust.pinned:
        state.put_blob(_pin_key(address.url), trust.root_pem)
    remember_kdf(state, kdf)
    record_kdf(state, address.url, username, kdf)
    return LoginOutcome(login_state, reply.device_registered_now)


def _pin_key(server: str) -> str:
    # Kept across logouts: logging in again must not trust a new certificate silently.
    return f"tls_pin:{server}"


@dataclass(frozen=True)
class CertificateCheck:
    presented: PresentedCertificate
    pinned_fingerprint: str


async def check_certificate(
    state: AgentState, server: str, ca_pem: bytes = b""
) -> CertificateCheck:
    """What an https server presents and the pin recorded for it here, for a login
    screen to show before the person confirms."""
    address = parse_server_url(server)
    presented = await asyncio.to_thread(probe_certificate, address.url, ca_pem=ca_pem)
    pinned = state.get_blob(_pin_key(address.url))
    return CertificateCheck(presented, certificate_fingerprint(pinned) if pinned else "")


_KDF_KEY = "login_kdf"


def _kdf_text(kdf: KdfParams) -> bytes:
    return f"{kdf.algorithm}:{kdf.salt.hex()}:{kdf.log2_n}:{kdf.r}:{kdf.p}".encode()


def _kdf_parse(raw: bytes) -> KdfParams:
    algorithm, salt, log2_n, r, p = raw.decode().split(":")
    return KdfParams(int(algorithm), bytes.fromhex(salt), int(log2_n), int(r), int(p))


def remember_kdf(state: AgentState, kdf: KdfParams) -> None:
    """Keep the KDF parameters so the password can be checked offline (unlocking the
    app must work while the server is away)."""
    state.put_blob(_KDF_KEY, _kdf_text(kdf))


def _account_kdf_key(server: str, username: str) -> str:
    return f"account_kdf:{server}:{username}"


def recorded_kdf(state: AgentState, server: str, username: str) -> KdfParams | None:
    """The KDF parameters recorded at this account's last login here; kept across
    logouts, so a later login can refuse a downgrade."""
    raw = state.get_blob(_account_kdf_key(server, username))
    return _kdf_parse(raw) if raw else None


def record_kdf(state: AgentState, server: str, username: str, kdf: KdfParams) -> None:
    state.put_blob(_account_kdf_key(server, username), _kdf_text(kdf))


def check_password(state: AgentState, password: str) -> bool:
    """Whether ``password`` is the logged-in user's, judged on the device alone."""
    login_state = state.load_login()
    raw = state.get_blob(_KDF_KEY)
    if not login_state.logged_in or not raw:
        return False
    kdf = _kdf_parse(raw)
    return derive_login_secrets(password, kdf).wrap_key == login_state.wrap_key


async def change_password(
    state: AgentState, profile: common_pb2.Profile, current: str, new: str
) -> None:
    """Change the account password from this device: prove the current one, derive
    new secrets, re-wrap every vault key under the new wrapping key, and let the server
    swap both in one transaction. The server never sees a password or a vault key."""
    if len(new) < 8:
        raise LoginError("a password needs at least 8 characters")
    login_state = state.load_login()
    if not login_state.logged_in:
        raise LoginError("this agent is not logged in: run 'comet login' first")
    channel = aio_channel(login_state.server)
    try:
        auth = control_pb2_grpc.AuthServiceStub(channel)
        pre = await auth.PreLogin(
            control_pb2.PreLoginRequest(username=login_state.username), timeout=30
        )
        kdf = KdfParams(pre.kdf.algorithm, pre.kdf.salt, pre.kdf.log2_n, pre.kdf.r, pre.kdf.p)
        require_no_downgrade(recorded_kdf(state, login_state.server, login_state.username), kdf)
        old = await asyncio.to_thread(derive_login_secrets, current, kdf)
        if old.wrap_key != login_state.wrap_key:
            raise LoginError("the current password is wrong")
        new_kdf = kdf.renewed()
        fresh = await asyncio.to_thread(derive_login_secrets, new, new_kdf)
        rewrapped = {
            vault.vault_id: wrap_secret(
                fresh.wrap_key, unwrap_secret(old.wrap_key, vault.wrapped_vault_key)
            )
            for vault in profile.vaults
            if vault.wrapped_vault_key
        }
        await auth.ChangePassword(
            control_pb2.ChangePasswordRequest(
                new_auth_key=fresh.auth_key,
                new_kdf=control_pb2.KdfParams(
                    algorithm=new_kdf.algorithm,
                    salt=new_kdf.salt,
                    log2_n=new_kdf.log2_n,
                    r=new_kdf.r,
                    p=new_kdf.p,
                ),
                rewrapped_vault_keys=rewrapped,
                current_auth_key=old.auth_key,
            ),
            metadata=(("authorization", f"Bearer {login_state.device_token}"),),
            timeout=30,
        )
    except grpc.aio.AioRpcError as e:
        raise LoginError(rpc_error_message(e)) from e
    finally:
        await channel.close()
    state.save_login(replace(state.load_login(), wrap_key=fresh.wrap_key))
    remember_kdf(state, new_kdf)
    record_kdf(state, login_state.server, login_state.username, new_kdf)


def _task_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not just one of its calls)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


class LiveConnection:
    """Holds the live connection while the agent is logged in."""

    def __init__(
        self,
        state: AgentState,
        handler: CommandHandler,
        *,
        on_logged_out: Callable[[str], None],
        on_connected: Callable[[], None] = lambda: None,
        reconnect_min: float,
        reconnect_max: float,
        heartbeat_seconds: float,
    ) -> None:
        self._state = state
        self._handler = handler
        self._on_logged_out = on_logged_out
        self._on_connected = on_connected
        self._backoff = Backoff(first=reconnect_min, cap=reconnect_max)
        self._heartbeat = heartbeat_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._call: (
            grpc.aio.StreamStreamCall[control_pb2.AgentMessage, control_pb2.ServerMessage] | None
        ) = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.connected = False
        self._accepted = False
        self.last_error = ""
        # When the server was last heard on the live connection (UTC), for status.
        self.last_contact: datetime | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._call is not None:
            self._call.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def reconnect_now(self) -> None:
        """Drop the current stream (if any) and dial again without waiting."""
        self._wake.set()
        if self._call is not None:
            self._call.cancel()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            login = self._state.load_login()
            if not login.logged_in:
                self._wake.clear()
                # A login between the check and the clear must not be slept through.
                if not self._state.load_login().logged_in:
                    await self._wake.wait()
                continue
            self._accepted = False
            try:
                ended_cleanly = await self._connect_once(login)
            except asyncio.CancelledError:
                if self._stopping or _task_cancelled():
                    raise
                ended_cleanly = True  # a stray cancellation of a call: dial again
            except Exception as e:  # the loop outlives every error class; retry later
                log.exception("live connection failed")
                self.last_error, ended_cleanly = f"internal error: {e}", False
            if self._stopping:
                break
            if self._accepted or (ended_cleanly and self._wake.is_set()):
                failures = 0  # it was up (or asked to redial): start the back-off over
            failures += 1
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._backoff.delay(failures))

    async def _connect_once(self, login: LoginState) -> bool:
        outgoing: asyncio.Queue[control_pb2.AgentMessage] = asyncio.Queue()
        channel = aio_channel(login.server, trust=login.trust)
        try:
            stub = control_pb2_grpc.AgentServiceStub(channel)
            self._call = stub.Connect(
                self._outgoing(login, outgoing),
                metadata=(("authorization", f"Bearer {login.device_token}"),),
            )
            async for message in self._call:
                self.last_contact = datetime.now(UTC)
                body = message.WhichOneof("body")
                if body == "accepted":
                    self.connected = True
                    self._accepted = True
                    self.last_error = ""
                    self._on_connected()
                    # Beat as often as the server expects, or it shows us offline. The
                    # wait under way began with our own interval: a beat now ends it,
                    # so the server's interval applies from here on.
                    if message.accepted.heartbeat_seconds:
                        self._heartbeat = float(message.accepted.heartbeat_seconds)
                        outgoing.put_nowait(
                            control_pb2.AgentMessage(heartbeat=control_pb2.Heartbeat())
                        )
                    log.info("live connection to %s is up", login.server)
                elif body == "command":
                    task = asyncio.create_task(self._handle(message.command, outgoing))
                    self._handlers.add(task)
                    task.add_done_callback(self._handlers.discard)
            return True
        except asyncio.CancelledError:
            # reconnect_now() cancelled the call (disconnect, login, drop): dial again.
            # Only our own task being cancelled (agent shutdown) ends the loop.
            if self._stopping or _task_cancelled():
                raise
            return True
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return True
            self.last_error = rpc_error_message(e)
            if refused_certificate(e):
                self.last_error = await asyncio.to_thread(
                    explain_refused_certificate, login.server, login.trust, "comet login"
                )
                log.warning("refusing the server: %s", self.last_error)
            if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                log.warning("the server refused this device: %s", self.last_error)
                self._on_logged_out(self.last_error)
            else:
                log.info("live connection unavailable: %s", self.last_error)
            return False
        finally:
            self.connected = False
            self._call = None
            await channel.close()

    async def _outgoing(
        self, login: LoginState, queue: asyncio.Queue[control_pb2.AgentMessage]
    ) -> AsyncIterator[control_pb2.AgentMessage]:
        yield control_pb2.AgentMessage(
            hello=control_pb2.AgentHello(device_id=login.device_id, client_version=__version__)
        )
        while True:
            try:
                yield await asyncio.wait_for(queue.get(), self._heartbeat)
            except TimeoutError:
                yield control_pb2.AgentMessage(heartbeat=control_pb2.Heartbeat())

    async def _handle(
        self, command: control_pb2.Command, queue: asyncio.Queue[control_pb2.AgentMessage]
    ) -> None:
        try:
            reply = await self._handler(command)
        except AgentError as e:
            reply = control_pb2.CommandReply(error=str(e), error_code=e.code)
        except OSError as e:  # a path or disk problem on this device
            failure = LocalPathError.from_os_error(e)
            reply = control_pb2.CommandReply(error=str(failure), error_code=failure.code)
        except Exception as e:  # a bug must not kill the connection
            log.exception("command %s failed", command.WhichOneof("action"))
            reply = control_pb2.CommandReply(error=f"internal error: {e}", error_code="internal")
        reply.request_id = command.request_id
        await queue.put(control_pb2.AgentMessage(reply=reply))
