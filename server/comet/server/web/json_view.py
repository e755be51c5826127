"""Plain data (the console's dataclasses, store records) as JSON values."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any

from comet.server.store.accounts import Role
from comet.server.store.models import AuditEvent


def jsonable(value: Any) -> Any:
    if isinstance(value, Role):
        from comet.server.web.console import role_name

        return role_name(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, AuditEvent):
        return {
            "event_id": value.id,
            "time": value.time.isoformat(),
            "actor": value.actor,
            "action": value.action,
            "target": value.target,
            "source_address": value.source_address,
            "success": value.success,
            "details": value.details,
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
