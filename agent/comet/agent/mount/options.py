"""``MountOptions``: what one mount shows and how much memory its cache may use."""

from __future__ import annotations

from dataclasses import dataclass

from comet.agent.errors import AgentError

DEFAULT_CACHE_BYTES = 256 << 20
SNAPSHOT_LIST_TTL = 5.0


class MountError(AgentError):
    """A mount could not be started or stopped; the message says what to do."""

    code = "mount"


@dataclass(frozen=True, kw_only=True)
class MountOptions:
    """``item_ids`` and ``snapshot`` narrow what is shown (empty: everything of this
    device, or of every device with ``all_devices``). ``snapshot`` is an id or id prefix."""

    mountpoint: str
    item_ids: frozenset[str] = frozenset()
    snapshot: str = ""
    all_devices: bool = False
    device_id: str = ""
    cache_bytes: int = DEFAULT_CACHE_BYTES
    list_ttl: float = SNAPSHOT_LIST_TTL
    allow_other: bool = True
