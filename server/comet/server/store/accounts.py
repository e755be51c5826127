"""Users, devices, sessions, the audit log and shared server secrets."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from sqlalchemy import ColumnElement, and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.agent.credentials import KdfParams
from comet.server import passwords, totp, validation
from comet.server.clock import Clock
from comet.server.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ThrottledError,
    TwoFactorRequiredError,
    UnknownCredentialError,
)
from comet.server.secret_box import SecretBox
from comet.server.store import profile_document
from comet.server.store.audit import AuditLog
from comet.server.store.credential_cache import (
    REVOCATIONS_CHANNEL,
    CredentialCache,
    device_revoked,
    user_revoked,
)
from comet.server.store.models import AuditEvent, Device, ServerSetting, Session, User
from comet.server.store.policies import effective_policy
from comet.server.throttle import BackoffPolicy, retry_after

USERNAME_RE = validation.USERNAME_RE
# Failed attempts of these kinds are throttled together (see ``throttle``).
LOGIN_ACTIONS = ("login",)
TOTP_ACTIONS = ("totp.confirm", "totp.disable")
PASSWORD_ACTIONS = ("password.change",)


class Role(IntEnum):
    """Account roles; values match ``comet.v1.AdminRole``."""

    USER = 1
    SUPER_ADMIN = 2
    OPERATOR = 3
    AUDITOR = 4

    @property
    def is_admin(self) -> bool:
        return self is not Role.USER


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    username: str
    role: Role
    max_devices: int
    created_at: datetime
    device_count: int
    policy_id: str | None
    totp_enabled: bool


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    username: str
    name: str
    os: str
    arch: str
    timezone: str
    client_version: str
    registered_at: datetime
    last_seen: datetime | None
    online: bool
    revoked: bool


@dataclass(frozen=True)
class Registration:
    name: str
    os: str = ""
    arch: str = ""
    timezone: str = ""
    client_version: str = ""


@dataclass(frozen=True)
class LoginResult:
    user_id: str
    role: Role
    session_token: str
    expires_at: datetime
    device_id: str = ""
    device_token: str = ""
    device_registered_now: bool = False


@dataclass(frozen=True)
class PasswordReset:
    revoked_devices: list[str]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user or admin session, or a device."""

    user_id: str
    username: str
    role: Role
    device_id: str | None = None
    # A session opened with admin rights (``LoginRequest.admin_session``).
    admin_session: bool = False


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str  # base32, for typing into an authenticator app
    uri: str  # otpauth:// URI, for a QR code


@dataclass(frozen=True)
class LoginPolicy:
    session_hours: int = 12
    max_failed_logins: int = 5
    failed_login_window_seconds: int = 900
    online_after_seconds: int = 45
    # The first wait once the free failures are used up; it doubles per failure.
    first_backoff_seconds: int = 30

    @property
    def backoff(self) -> BackoffPolicy:
        window = timedelta(seconds=self.failed_login_window_seconds)
        return BackoffPolicy(
            free_per_account_source=self.max_failed_logins,
            free_per_source=self.max_failed_logins * 4,
            first_delay=timedelta(seconds=self.first_backoff_seconds),
            max_delay=window,
            window=window,
        )


def check_username(username: str) -> str:
    return validation.username(username)


def check_registration(registration: Registration | None) -> None:
    if registration is None:
        return
    validation.text(registration.name, field="the device name", max_len=validation.NAME_MAX)
    for field, value in (
        ("the device's operating system", registration.os),
        ("the device's architecture", registration.arch),
        ("the device's time zone", registration.timezone),
        ("the client version", registration.client_version),
    ):
        validation.text(value, field=field, max_len=validation.SHORT_TEXT_MAX)


class AccountStore:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        policy: LoginPolicy,
        *,
        box: SecretBox | None = None,
        credentials: CredentialCache | None = None,
        hasher: passwords.AuthKeyHasher | None = None,
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Single reads on the hot path need no transaction (no BEGIN/ROLLBACK trips).
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._clock = clock
        self._policy = policy
        self._box = box
        # Device credentials that checked out, for a few seconds (the revocation
        # bound is documented in credential_cache).
        self._credentials = credentials or CredentialCache()
        # Password hashing runs in worker threads, off the event loop.
        self._hasher = hasher or passwords.AuthKeyHasher()
        self.audit_log = AuditLog(engine, clock)
        # Records one audit event (``AuditLog.record``); kept here for the callers.
        self.audit = self.audit_log.record

    def on_revocation(self, payload: str) -> None:
        """A ``comet_revocations`` notification (from any instance, this one too)."""
        self._credentials.apply(payload)

    # ------------------------------------------------------------------ users

    async def create_user(
        self,
        username: str,
        kdf: KdfParams,
        auth_key: bytes,
        *,
        role: Role = Role.USER,
        max_devices: int = 0,
    ) -> UserRecord:
        check_username(username)
        validation.auth_key(auth_key)
        stored = await self._hasher.hash(auth_key)
        user = User(
            id=str(uuid.uuid4()),
            username=username,
            role=int(role),
            kdf=passwords.kdf_to_json(kdf),
            auth_hash=stored.auth_hash,
            auth_salt=stored.auth_salt,
            max_devices=max_devices,
            created_at=self._clock.now(),
            profile={},
            profile_version=1,
        )
        async with self._sessions() as s:
            s.add(user)
            try:
                await s.commit()
            except IntegrityError as e:
                raise AlreadyExistsError(f"user {username!r} already exists") from e
        return user_record(user, 0)

    async def list_users(self) -> list[UserRecord]:
        async with self._sessions() as s:
            counts = (
                select(Device.user_id, func.count().label("n"))
                .where(Device.revoked_at.is_(None))
                .group_by(Device.user_id)
                .subquery()
            )
            rows = await s.execute(
                select(User, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.user_id == User.id)
                .order_by(User.username)
            )
            return [user_record(user, int(n)) for user, n in rows.all()]

    async def delete_user(self, username: str) -> None:
        """Deletes the account; never the last SUPER admin (someone must be able to
        administer the server)."""
        check_username(username)
        async with self._sessions() as s:
            await _keep_a_super(s, username, Role.USER)
            result = await s.execute(delete(User).where(User.username == username))
            await _announce_revoked(s, user_revoked(username))
            await s.commit()
        self._credentials.forget_user(username)
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFoundError(f"no user named {username!r}")

    async def set_role(self, username: str, role: Role) -> Role:
        """Gives the account another role; returns the one it had. Never takes the
        role from the last SUPER admin. Its sessions end: the next sign-in gets the
        new role everywhere (an open session would otherwise keep its kind)."""
        check_username(username)
        async with self._sessions() as s, s.begin():
            previous = await _keep_a_super(s, username, role)
            user = await s.scalar(select(User).where(User.username == username))
            assert user is not None  # _keep_a_super found it
            user.role = int(role)
            if previous is not role:
                await self._end_sessions(s, user.id)
        return previous

    async def set_max_devices(self, username: str, max_devices: int) -> UserRecord:
        """The account's device limit (0: unlimited). Devices already registered stay."""
        check_username(username)
        if not 0 <= max_devices <= 1_000_000:
            raise InvalidRequestError("the device limit is a whole number from 0 to 1000000")
        async with self._sessions() as s, s.begin():
            user = await s.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFoundError(f"no user named {username!r}")
            user.max_devices = max_devices
            count = await s.scalar(
                select(func.count())
                .select_from(Device)
                .where(Device.user_id == user.id, Device.revoked_at.is_(None))
            )
            return user_record(user, int(count or 0))

    async def user_id(self, username: str) -> str:
        check_username(username)
        async with self._sessions() as s:
            found = await s.scalar(select(User.id).where(User.username == username))
        if found is None:
            raise NotFoundError(f"no user named {username!r}")
        return found

    # ------------------------------------------------------------------ login

    async def prelogin(self, username: str) -> KdfParams:
        check_username(username)
        async with self._sessions() as s:
            kdf = await s.scalar(select(User.kdf).where(User.username == username))
        if kdf is None:
            return passwords.decoy_kdf(await self.server_secret("prelogin"), username)
        return passwords.kdf_from_json(kdf)

    async def login(
        self,
        username: str,
        auth_key: bytes,
        *,
        source: str,
        admin_session: bool,
        device_id: str = "",
        registration: Registration | None = None,
        totp_code: str = "",
        web: bool = False,
    ) -> LoginResult:
        """Check the key (and the two-factor code, when enabled) and open a session;
        agents also get (or register) a device. ``web``: a web console session, an
        admin session for an administrator and a plain one (no device) otherwise.

        Input is checked before any database work. Throttled per (account, source)
        and per source (see ``throttle``); every outcome is audited. A missing
        two-factor code raises TwoFactorRequiredError and is not counted as a
        failure; a wrong one is, and so is a wrong password. An unknown username
        costs the same hash as a known one."""
        check_username(username)
        validation.auth_key(auth_key)
        validation.totp_code(totp_code)
        validation.device_id(device_id)
        check_registration(registration)
        await self._check_backoff(LOGIN_ACTIONS, username, source, action="login")
        # Only what the check needs: a large profile must not make known usernames
        # slower to refuse than unknown ones.
        async with self._reads.connect() as conn:
            row = (
                await conn.execute(
                    select(User.id, User.auth_hash, User.auth_salt).where(User.username == username)
                )
            ).first()
        stored = passwords.StoredSecret(row.auth_hash, row.auth_salt) if row else None
        ok = await self._hasher.verify(auth_key, stored)
        user = None
        if row is not None and ok:
            async with self._sessions() as s:
                user = await s.get(User, row.id)  # None if deleted meanwhile
        if user is None:
            await self.audit(
                username,
                "login",
                username,
                source=source,
                success=False,
                details="wrong username or password",
            )
            raise AuthenticationError("wrong username or password")
        if user.totp_secret is not None:
            await self._check_totp(user, totp_code, source)
        role = Role(user.role)
        if web:
            admin_session = role.is_admin
        if admin_session and not role.is_admin:
            await self.audit(
                username,
                "login",
                username,
                source=source,
                success=False,
                details="not an administrator",
            )
            raise AuthenticationError(f"{username!r} is not an administrator")
        now = self._clock.now()
        token = passwords.new_token()
        expires = now + timedelta(hours=self._policy.session_hours)
        result = LoginResult(user.id, role, token, expires)
        async with self._sessions() as s:
            s.add(
                Session(
                    token_hash=passwords.token_hash(token),
                    user_id=user.id,
                    is_admin=admin_session,
                    created_at=now,
                    expires_at=expires,
                )
            )
            if not admin_session and not web:
                result = await self._attach_device(s, user, result, device_id, registration)
            if result.device_id:  # its old token may be remembered on other instances
                await _announce_revoked(s, device_revoked(result.device_id))
            await s.commit()
        if result.device_id:
            # Rotated: the device's old credential must not live on in the cache.
            self._credentials.forget_device(result.device_id)
        await self.audit(
            username,
            "login",
            username,
            source=source,
            success=True,
            details=("web " if web else "")
            + ("admin" if admin_session else f"device {result.device_id}" if not web else "user"),
        )
        if result.device_registered_now:
            await self.audit(
                username, "device.register", result.device_id, source=source, success=True
            )
        return result

    async def _attach_device(
        self,
        s: AsyncSession,
        user: User,
        result: LoginResult,
        device_id: str,
        registration: Registration | None,
    ) -> LoginResult:
        device_token = passwords.new_token()
        if device_id:
            device = await s.get(Device, device_id)
            if device is not None and device.user_id == user.id and device.revoked_at is None:
                # A fresh login rotates the device credential; the old one stops working.
                device.token_hash = passwords.token_hash(device_token)
                return _with_device(result, device.id, device_token, registered=False)
            if device is not None and device.revoked_at is not None:
                raise AuthenticationError(
                    "this device was revoked by an administrator; it cannot log in again "
                    "with its old registration"
                )
        if user.max_devices:
            count = await s.scalar(
                select(func.count())
                .select_from(Device)
                .where(Device.user_id == user.id, Device.revoked_at.is_(None))
            )
            if (count or 0) >= user.max_devices:
                raise LimitExceededError(
                    f"{user.username!r} already has {count} devices, the most allowed; "
                    "ask an administrator to revoke one or raise the limit"
                )
        reg = registration or Registration(name="device")
        device = Device(
            id=str(uuid.uuid4()),
            user_id=user.id,
            name=reg.name or "device",
            os=reg.os,
            arch=reg.arch,
            timezone=reg.timezone,
            client_version=reg.client_version,
            registered_at=self._clock.now(),
            token_hash=passwords.token_hash(device_token),
        )
        s.add(device)
        return _with_device(result, device.id, device_token, registered=True)

    async def _check_totp(self, user: User, code: str, source: str) -> None:
        if not code.strip():
            await self.audit(
                user.username, "login.totp_required", user.username, source=source, success=False
            )
            raise TwoFactorRequiredError("two-factor code required")
        assert user.totp_secret is not None
        secret = self._secret_box().open(user.totp_secret, context=f"totp:{user.id}")
        step = totp.matching_step(secret, code, self._clock.now())
        if step is not None and await self._use_totp_step(user.id, step):
            return
        await self.audit(
            user.username,
            "login",
            user.username,
            source=source,
            success=False,
            details="wrong two-factor code",
        )
        raise AuthenticationError("wrong two-factor code")

    async def _use_totp_step(self, user_id: str, step: int) -> bool:
        """Marks the step used; False if it (or a later one) was used already."""
        async with self._sessions() as s:
            result = await s.execute(
                update(User)
                .where(
                    User.id == user_id,
                    (User.totp_last_step.is_(None)) | (User.totp_last_step < step),
                )
                .values(totp_last_step=step)
            )
            await s.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def confirm_password(self, username: str, auth_key: bytes, *, source: str) -> None:
        """Check a password the user has just re-entered (for an action that needs it,
        such as a delete grant for an immutable vault); backed off and audited like a
        password change, and a failure counts as one."""
        validation.auth_key(auth_key)
        await self._check_backoff(PASSWORD_ACTIONS, username, source, action="password.confirm")
        async with self._sessions() as s:
            user = await s.scalar(select(User).where(User.username == username))
            row = None if user is None else (user.auth_hash, user.auth_salt)
        if row is None or not await self._hasher.verify(auth_key, passwords.StoredSecret(*row)):
            await self.audit(
                username, "password.change", username, source=source, success=False,
                details="wrong password re-entered (delete grant)",
            )  # fmt: skip
            raise AuthenticationError("wrong password")

    async def _check_backoff(
        self, actions: tuple[str, ...], username: str, source: str, *, action: str
    ) -> None:
        """Refuses ``action`` (ThrottledError, audited as ``<action>.throttled``, not
        counted as a failure) while ``source`` must still wait after failed
        ``actions``."""
        policy = self._policy.backoff
        now = self._clock.now()
        since = now - policy.window
        pair, by_source = await self.audit_log.failures(
            actions, since, source=source, target=username
        )
        wait = retry_after(policy, pair=pair, source=by_source, now=now)
        if wait <= 0:
            return
        await self.audit(
            username,
            f"{action}.throttled",
            username,
            source=source,
            success=False,
            details=f"{pair.failures} failures for the account, {by_source.failures} in all",
        )
        raise ThrottledError(
            f"too many failed attempts from this address; try again in {wait} seconds"
        )

    # ------------------------------------------------------------------ credentials

    async def authenticate_session(self, token: str, *, admin: bool) -> Principal:
        now = self._clock.now()
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(Session, User)
                    .join(User, User.id == Session.user_id)
                    .where(Session.token_hash == passwords.token_hash(token))
                )
            ).first()
        if row is None:
            raise UnknownCredentialError("not logged in (unknown session): log in again")
        session, user = row
        if session.revoked_at is not None or session.expires_at <= now:
            raise AuthenticationError("the session has expired: log in again")
        if admin and not session.is_admin:
            raise AuthenticationError("this call needs an administrator session")
        return Principal(
            user.id, user.username, Role(user.role), admin_session=bool(session.is_admin)
        )

    async def authenticate_device(self, token: str) -> Principal:
        """The device holding ``token``. A credential that checked out is trusted for
        a few seconds without asking the database again; revoking through this
        instance ends that at once (see ``credential_cache``)."""
        key = passwords.token_hash(token)
        now = self._clock.now()
        cached = self._credentials.get(key, now)
        if cached is not None:
            return cached
        async with self._reads.connect() as conn:
            row = (
                await conn.execute(
                    select(Device.id, Device.revoked_at, User.id, User.username, User.role)
                    .join(User, User.id == Device.user_id)
                    .where(Device.token_hash == key)
                )
            ).first()
        if row is None:
            raise UnknownCredentialError("unknown device credential: log this device in again")
        device_id, revoked_at, user_id, username, role = row
        if revoked_at is not None:
            raise AuthenticationError("this device was revoked by an administrator")
        principal = Principal(user_id, username, Role(role), device_id=device_id)
        self._credentials.put(key, principal, now)
        return principal

    async def revoke_session(self, token: str) -> None:
        async with self._sessions() as s:
            await s.execute(
                update(Session)
                .where(Session.token_hash == passwords.token_hash(token))
                .values(revoked_at=self._clock.now())
            )
            await s.commit()

    # ------------------------------------------------------------------ two-factor

    def _secret_box(self) -> SecretBox:
        if self._box is None:
            raise ServerError("this server has no secret key configured")
        return self._box

    async def begin_totp_enrolment(self, user_id: str) -> TotpEnrolment:
        """A new secret, pending until ``confirm_totp_enrolment`` proves the user's
        authenticator app has it. Refused while two-factor is enabled."""
        secret = totp.new_secret()
        async with self._sessions() as s, s.begin():
            user = await s.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFoundError("no such user")
            if user.totp_secret is not None:
                raise ConflictError(
                    "two-factor authentication is already enabled; disable it first"
                )
            user.totp_pending_secret = self._secret_box().seal(
                secret, context=f"totp-pending:{user.id}"
            )
            username = user.username
        return TotpEnrolment(secret, totp.provisioning_uri(secret, username))

    async def confirm_totp_enrolment(self, user_id: str, code: str, *, source: str = "") -> None:
        """Enables two-factor once ``code`` proves the app has the secret. Wrong codes
        are audited and throttled like logins."""
        validation.totp_code(code)
        username = await self._username(user_id)
        await self._check_backoff(TOTP_ACTIONS, username, source, action="totp.confirm")
        async with self._sessions() as s, s.begin():
            user = await s.get(User, user_id, with_for_update=True)
            if user is None or user.totp_pending_secret is None:
                raise InvalidRequestError("start two-factor enrolment first")
            box = self._secret_box()
            secret = box.open(user.totp_pending_secret, context=f"totp-pending:{user.id}")
            step = totp.matching_step(secret, code, self._clock.now())
            if step is not None:
                user.totp_secret = box.seal(secret, context=f"totp:{user.id}")
                user.totp_pending_secret = None
                user.totp_last_step = step
        if step is None:
            await self.audit(
                username,
                "totp.confirm",
                username,
                source=source,
                success=False,
                details="wrong two-factor code",
            )
            raise InvalidRequestError(
                "wrong two-factor code: check the authenticator app and the clock"
            )
        await self.audit(username, "totp.enable", username, source=source)

    async def disable_totp(self, user_id: str, code: str, *, source: str = "") -> None:
        """Turns two-factor off; needs a current, unused code. Wrong codes are
        audited and throttled like logins."""
        validation.totp_code(code)
        username = await self._username(user_id)
        await self._check_backoff(TOTP_ACTIONS, username, source, action="totp.disable")
        async with self._sessions() as s, s.begin():
            user = await s.get(User, user_id, with_for_update=True)
            if user is None or user.totp_secret is None:
                raise InvalidRequestError("two-factor authentication is not enabled")
            secret = self._secret_box().open(user.totp_secret, context=f"totp:{user.id}")
            step = totp.matching_step(secret, code, self._clock.now())
            # A code already used (to log in, say) cannot be replayed to disable.
            fresh = step is not None and (user.totp_last_step is None or user.totp_last_step < step)
            if fresh:
                user.totp_secret = None
                user.totp_pending_secret = None
                user.totp_last_step = None
        if not fresh:
            await self.audit(
                username,
                "totp.disable",
                username,
                source=source,
                success=False,
                details="wrong two-factor code",
            )
            raise AuthenticationError("wrong two-factor code")
        await self.audit(username, "totp.disable", username, source=source)

    async def _username(self, user_id: str) -> str:
        async with self._reads.connect() as conn:
            name = await conn.scalar(select(User.username).where(User.id == user_id))
        if name is None:
            raise NotFoundError("no such user")
        return name

    async def reset_totp(self, username: str) -> bool:
        """An administrator turns a user's two-factor off (a lost authenticator), with
        any pending enrolment. Returns whether it had been enabled."""
        async with self._sessions() as s, s.begin():
            user = await s.scalar(select(User).where(User.username == username).with_for_update())
            if user is None:
                raise NotFoundError(f"no user named {username!r}")
            was_enabled = user.totp_secret is not None
            user.totp_secret = None
            user.totp_pending_secret = None
            user.totp_last_step = None
        return was_enabled

    # ------------------------------------------------------------------ passwords

    async def change_password(
        self,
        user_id: str,
        kdf: KdfParams,
        auth_key: bytes,
        rewrapped: dict[str, bytes],
        *,
        current_auth_key: bytes,
        source: str = "",
    ) -> None:
        """Replaces the login secret and every vault's wrapped key in one transaction,
        given proof of the current password; the account's sessions end (devices keep
        their credentials). A wrong current password is audited and throttled."""
        validation.auth_key(auth_key)
        async with self._sessions() as s:
            user = await s.get(User, user_id)
            if user is None:
                raise NotFoundError("no such user")
            await _check_password_policy(s, user)
            username, row = user.username, (user.auth_hash, user.auth_salt)
        validation.auth_key(current_auth_key)
        await self._check_backoff(PASSWORD_ACTIONS, username, source, action="password.change")
        if not await self._hasher.verify(current_auth_key, passwords.StoredSecret(*row)):
            await self.audit(
                username,
                "password.change",
                username,
                source=source,
                success=False,
                details="wrong current password",
            )
            raise AuthenticationError("the current password is wrong")
        stored = await self._hasher.hash(auth_key)
        async with self._sessions() as s, s.begin():
            user = await s.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFoundError("no such user")
            await _check_password_policy(s, user)
            if (user.auth_hash, user.auth_salt) != row:
                raise ConflictError("the password changed meanwhile; try again")
            user.profile = profile_document.rewrap_vault_keys(user.profile, rewrapped)
            user.profile_version += 1
            user.kdf = passwords.kdf_to_json(kdf)
            user.auth_hash, user.auth_salt = stored.auth_hash, stored.auth_salt
            await self._end_sessions(s, user.id)
            username = user.username
        await self.audit(username, "password.change", username, source=source)

    async def reset_password(
        self,
        username: str,
        kdf: KdfParams,
        auth_key: bytes,
        *,
        force: bool,
        revoke_devices: bool = False,
    ) -> PasswordReset:
        """An administrator sets a new password. Refused unless the user allowed it
        in their account settings or ``force`` (which only overrides that refusal).
        Sessions end; with ``revoke_devices`` every device of the account is revoked
        too, in the same transaction, and every server instance is told at commit.
        The server holds no usable key to the user's vaults, so backups made with the
        old password stay readable only with the old password (there is no
        admin-assisted recovery)."""
        check_username(username)
        validation.auth_key(auth_key)
        stored = await self._hasher.hash(auth_key)
        async with self._sessions() as s, s.begin():
            user = await s.scalar(select(User).where(User.username == username).with_for_update())
            if user is None:
                raise NotFoundError(f"no user named {username!r}")
            if not force and not profile_document.allows_admin_reset(user.profile):
                raise PermissionDeniedError(
                    f"{username!r} has not allowed administrators to reset their password; "
                    "force it only if you accept that their existing backups may become "
                    "unreadable"
                )
            user.kdf = passwords.kdf_to_json(kdf)
            user.auth_hash, user.auth_salt = stored.auth_hash, stored.auth_salt
            await self._end_sessions(s, user.id)
            revoked: list[str] = []
            if revoke_devices:
                revoked = list(
                    await s.scalars(
                        update(Device)
                        .where(Device.user_id == user.id, Device.revoked_at.is_(None))
                        .values(revoked_at=self._clock.now(), connected_instance=None)
                        .returning(Device.id)
                    )
                )
                for device_id in revoked:
                    await _announce_revoked(s, device_revoked(device_id))
        for device_id in revoked:
            self._credentials.forget_device(device_id)
        return PasswordReset(revoked)

    async def _end_sessions(self, s: AsyncSession, user_id: str) -> None:
        await s.execute(
            update(Session)
            .where(Session.user_id == user_id, Session.revoked_at.is_(None))
            .values(revoked_at=self._clock.now())
        )

    # ------------------------------------------------------------------ devices

    async def list_devices(
        self, *, username: str | None = None, user_id: str | None = None, online_only: bool = False
    ) -> list[DeviceRecord]:
        query = select(Device, User.username).join(User, User.id == Device.user_id)
        if username:  # "" means every user, as callers pass a proto field through
            check_username(username)
        if username is not None:
            query = query.where(User.username == username)
        if user_id is not None:
            query = query.where(User.id == user_id)
        async with self._sessions() as s:
            rows = (await s.execute(query.order_by(Device.registered_at))).all()
        records = [self.device_record(device, name) for device, name in rows]
        return [r for r in records if r.online] if online_only else records

    async def device_owner(self, device_id: str) -> str:
        """The user id of a device's account; NotFoundError for an unknown device."""
        async with self._sessions() as s:
            owner = await s.scalar(select(Device.user_id).where(Device.id == device_id))
        if owner is None:
            raise NotFoundError(f"no device {device_id!r}")
        return owner

    async def revoke_device(self, device_id: str) -> str:
        """Revoke a device; returns its owner's username."""
        async with self._sessions() as s:
            device = await s.get(Device, device_id)
            if device is None:
                raise NotFoundError(f"no device {device_id!r}")
            device.revoked_at = self._clock.now()
            device.connected_instance = None
            owner = await s.scalar(select(User.username).where(User.id == device.user_id))
            await _announce_revoked(s, device_revoked(device_id))
            await s.commit()
        self._credentials.forget_device(device_id)
        return owner or ""

    async def mark_connected(self, device_id: str, instance: str) -> None:
        await self.mark_connected_many([device_id], instance)

    async def mark_connected_many(self, device_ids: list[str], instance: str) -> None:
        """These devices' live connections are held by ``instance`` (one statement)."""
        async with self._sessions() as s:
            await s.execute(
                update(Device)
                .where(Device.id.in_(device_ids))
                .values(connected_instance=instance, last_seen=self._clock.now())
            )
            await s.commit()

    async def mark_seen(self, device_ids: list[str]) -> None:
        if not device_ids:
            return
        async with self._sessions() as s:
            await s.execute(
                update(Device).where(Device.id.in_(device_ids)).values(last_seen=self._clock.now())
            )
            await s.commit()

    async def mark_disconnected(self, device_id: str, instance: str) -> None:
        await self.mark_disconnected_many([device_id], instance)

    async def mark_disconnected_many(self, device_ids: list[str], instance: str) -> None:
        """These devices' connections to ``instance`` ended (a device that another
        instance holds meanwhile is left alone)."""
        async with self._sessions() as s:
            await s.execute(
                update(Device)
                .where(Device.id.in_(device_ids), Device.connected_instance == instance)
                .values(connected_instance=None, last_seen=self._clock.now())
            )
            await s.commit()

    def online_clause(self) -> ColumnElement[bool]:
        """``DeviceRecord.online`` as SQL, for lists filtered in the database: the same
        rule as ``device_record`` below (keep the two together)."""
        return and_(
            Device.connected_instance.is_not(None),
            Device.revoked_at.is_(None),
            Device.last_seen
            >= self._clock.now() - timedelta(seconds=self._policy.online_after_seconds),
        )

    def device_record(self, device: Device, username: str) -> DeviceRecord:
        online = (
            device.connected_instance is not None
            and device.revoked_at is None
            and device.last_seen is not None
            and device.last_seen
            >= self._clock.now() - timedelta(seconds=self._policy.online_after_seconds)
        )
        return DeviceRecord(
            device_id=device.id,
            username=username,
            name=device.name,
            os=device.os,
            arch=device.arch,
            timezone=device.timezone,
            client_version=device.client_version,
            registered_at=device.registered_at,
            last_seen=device.last_seen,
            online=online,
            revoked=device.revoked_at is not None,
        )

    # ------------------------------------------------------------------ audit, secrets

    async def list_audit(
        self, *, action: str = "", limit: int = 100, before_id: int = 0
    ) -> list[AuditEvent]:
        return await self.audit_log.list(action=action, limit=limit, before_id=before_id)

    async def server_secret(self, name: str) -> bytes:
        """A random secret shared by every instance, created on first use."""
        key = f"secret:{name}"
        async with self._sessions() as s:
            value = await s.scalar(select(ServerSetting.value).where(ServerSetting.key == key))
            if value is not None:
                return value
            s.add(ServerSetting(key=key, value=os.urandom(32)))
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()  # another instance created it first
        async with self._sessions() as s:
            stored = await s.scalar(select(ServerSetting.value).where(ServerSetting.key == key))
        assert stored is not None
        return stored


async def _announce_revoked(s: AsyncSession, payload: str) -> None:
    """Tell every server instance (on commit) to forget a revoked credential now."""
    await s.execute(select(func.pg_notify(REVOCATIONS_CHANNEL, payload)))


async def _keep_a_super(s: AsyncSession, username: str, new_role: Role) -> Role:
    """The account's current role, once making it ``new_role`` (USER for a deletion)
    would leave at least one SUPER admin. Locks every SUPER admin's row, so two
    admins demoting each other at once cannot both succeed."""
    supers = list(
        await s.scalars(
            select(User.username)
            .where(User.role == int(Role.SUPER_ADMIN))
            .order_by(User.id)
            .with_for_update()
        )
    )
    role = await s.scalar(select(User.role).where(User.username == username))
    if role is None:
        raise NotFoundError(f"no user named {username!r}")
    if supers == [username] and new_role is not Role.SUPER_ADMIN:
        raise ConflictError(
            f"{username!r} is the last SUPER admin: make another account SUPER first"
        )
    return Role(role)


def user_record(user: User, device_count: int) -> UserRecord:
    return UserRecord(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        max_devices=user.max_devices,
        created_at=user.created_at,
        device_count=device_count,
        policy_id=user.policy_id,
        totp_enabled=user.totp_secret is not None,
    )


def _with_device(
    result: LoginResult, device_id: str, token: str, *, registered: bool
) -> LoginResult:
    return LoginResult(
        user_id=result.user_id,
        role=result.role,
        session_token=result.session_token,
        expires_at=result.expires_at,
        device_id=device_id,
        device_token=token,
        device_registered_now=registered,
    )


async def _check_password_policy(s: AsyncSession, user: User) -> None:
    policy = await effective_policy(s, user)
    if policy is not None and policy.flag("prevent_change_password"):
        raise PermissionDeniedError(
            "changing the password is not allowed by your policy (prevent_change_password)"
        )
