"""The server's error root. Each subclass has a stable ``code``; the rpc layer maps
them to gRPC status codes in one place (``comet.server.rpc.errors``)."""

from __future__ import annotations


class ServerError(Exception):
    code = "server"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(ServerError):
    code = "invalid_request"


class AuthenticationError(ServerError):
    code = "unauthenticated"


class UnknownCredentialError(AuthenticationError):
    """The token is no session (or no device credential) this server knows: it may
    still be the other kind."""

    code = "unknown_credential"


class TwoFactorRequiredError(AuthenticationError):
    """The password was right but the account needs a two-factor code: clients prompt
    for one and log in again."""

    code = "totp_required"


class ThrottledError(ServerError):
    code = "throttled"


class PermissionDeniedError(ServerError):
    code = "permission_denied"


class NotFoundError(ServerError):
    code = "not_found"


class AlreadyExistsError(ServerError):
    code = "already_exists"


class ConflictError(ServerError):
    code = "conflict"


class LimitExceededError(ServerError):
    code = "limit_exceeded"


class DeviceOfflineError(ServerError):
    code = "device_offline"


def offline(device_id: str) -> str:
    """The sentence for a known device with no live connection."""
    return (
        f"device {device_id} is not connected (offline, or its agent is not running or"
        " not logged in); 'comet-admin device list --online' shows the connected devices"
    )


class ListenError(ServerError):
    """A port the server should listen on is taken, privileged or not on this machine."""

    code = "listen"


class DatabaseSetupError(ServerError):
    """The database could not be prepared (embedded PostgreSQL, migrations)."""

    code = "database_setup"


class DatabaseUnavailableError(ServerError):
    """The database cannot be reached (stopped, restarting, or refusing connections);
    clients should try again shortly."""

    code = "database_unavailable"
