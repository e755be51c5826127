"""Domain errors at the HTTP edge, in one place: each ``ServerError`` subclass's
stable ``code`` becomes the JSON error's ``code`` and picks the HTTP status."""

from __future__ import annotations

from starlette.responses import JSONResponse

from comet.server import errors

_STATUS: list[tuple[type[errors.ServerError], int]] = [
    (errors.TwoFactorRequiredError, 401),
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.AlreadyExistsError, 409),
    (errors.ConflictError, 409),
    (errors.InvalidRequestError, 400),
    (errors.LimitExceededError, 429),
    (errors.ThrottledError, 429),
    (errors.DeviceOfflineError, 409),
    (errors.DatabaseUnavailableError, 503),
]


def http_status(error: errors.ServerError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_response(error: errors.ServerError) -> JSONResponse:
    """``{"error": {"code": ..., "message": ...}}`` with the mapped status."""
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}}, status_code=http_status(error)
    )
