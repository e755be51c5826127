"""Comet's job classification and status codes (see comet-concepts.md)."""

from __future__ import annotations

from enum import IntEnum


class Classification(IntEnum):
    UNKNOWN = 4000
    BACKUP = 4001
    RESTORE = 4002
    RETENTION = 4003
    UNLOCK = 4004
    DELETE_SNAPSHOT = 4005
    REMEASURE = 4006
    SOFTWARE_UPDATE = 4007
    IMPORT = 4008
    REINDEX = 4009
    DEEP_VERIFY = 4010
    UNINSTALL = 4011


class Status(IntEnum):
    SUCCESS = 5000
    RUNNING = 6001
    RUNNING_REVIVED = 6002
    WAITING_TO_RETRY = 6003
    TIMEOUT = 7000
    WARNING = 7001
    ERROR = 7002
    QUOTA_EXCEEDED = 7003
    MISSED = 7004
    CANCELLED = 7005
    SKIPPED = 7006
    ABANDONED = 7007

    @property
    def running(self) -> bool:
        return 6000 <= self.value < 7000

    @property
    def ok(self) -> bool:
        """Success or warning: what `comet backup --wait` exits 0 for."""
        return self in (Status.SUCCESS, Status.WARNING)


class Severity(IntEnum):
    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4


def parse_status(text: str) -> Status:
    """A status by name (``success``, ``warning``…) or code (``5000``)."""
    return Status(int(text)) if text.isdigit() else Status[text.upper().replace("-", "_")]


def parse_classification(text: str) -> Classification:
    if text.isdigit():
        return Classification(int(text))
    aliases = {"VERIFY": "DEEP_VERIFY", "DELETE": "DELETE_SNAPSHOT"}
    name = text.upper().replace("-", "_")
    return Classification[aliases.get(name, name)]
