"""Tells a database that is away from a database that refused one statement.

SQLAlchemy wraps driver errors and psycopg reports server errors by SQLSTATE; the
rpc layer and the background tasks need only to know which kind of failure it was."""

from __future__ import annotations

import logging
from enum import Enum

import psycopg
from sqlalchemy import exc as sa_exc


class DatabaseFailure(Enum):
    NONE = "none"  # not a database failure, or one that is a bug of ours
    UNAVAILABLE = "unavailable"  # cannot connect, connection lost, server shutting down
    BUSY = "busy"  # statement cancelled, too many connections, pool exhausted
    CONFLICT = "conflict"  # serialization failure or deadlock: the caller may retry


# SQLSTATE classes and codes (PostgreSQL appendix A).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "58")
_BUSY_STATES = ("53", "57014")
_CONFLICT_STATES = ("40",)


def classify_database_failure(error: BaseException) -> DatabaseFailure:
    """Which kind of database failure ``error`` (or what it wraps) is."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = _classify_one(current)
        if kind is not DatabaseFailure.NONE:
            return kind
        current = current.__cause__ or current.__context__
    return DatabaseFailure.NONE


def _classify_one(error: BaseException) -> DatabaseFailure:
    if isinstance(error, sa_exc.TimeoutError):  # the connection pool is exhausted
        return DatabaseFailure.BUSY
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return DatabaseFailure.UNAVAILABLE
        inner = error.orig
        if inner is not None and inner is not error:
            kind = _classify_one(inner)
            if kind is not DatabaseFailure.NONE:
                return kind
        if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
            return DatabaseFailure.UNAVAILABLE
        return DatabaseFailure.NONE
    if isinstance(error, sa_exc.DisconnectionError):
        return DatabaseFailure.UNAVAILABLE
    if isinstance(error, psycopg.Error):
        state = error.sqlstate or ""
        if state.startswith(_CONFLICT_STATES):
            return DatabaseFailure.CONFLICT
        if state.startswith(_BUSY_STATES):
            return DatabaseFailure.BUSY
        if state.startswith(_UNAVAILABLE_STATES):
            return DatabaseFailure.UNAVAILABLE
        if not state and isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
            return DatabaseFailure.UNAVAILABLE  # no server answer at all: connection failed
        return DatabaseFailure.NONE
    return DatabaseFailure.NONE


def is_database_unavailable(error: BaseException) -> bool:
    return classify_database_failure(error) is DatabaseFailure.UNAVAILABLE


def log_background_failure(logger: logging.Logger, what: str, error: Exception) -> None:
    """For background loops: one line while the database is away (the supervisor
    says so once); a traceback for anything else, which is a bug."""
    if is_database_unavailable(error):
        logger.info("%s: the database is unavailable", what)
    else:
        logger.error("%s", what, exc_info=error)
