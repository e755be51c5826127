"""``MountOptions``: what one mount shows and how much memory its cache may use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from comet.agent.errors import AgentError

if TYPE_CHECKING:
    from comet.agent.repository.repository import Repository

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


@dataclass(frozen=True, kw_only=True)
class MountRequest:
    """What a person asks for; ``vault`` and ``item`` are ids or names."""

    vault: str
    mountpoint: str
    item: str = ""
    snapshot: str = ""
    all_devices: bool = False
    cache_bytes: int = 0


@dataclass(frozen=True)
class MountPlan:
    """An open repository and what to show of it; ``item_names`` gives item id → name
    (items unknown to it show as their id)."""

    repo: Repository
    options: MountOptions
    item_names: Callable[[], dict[str, str]]
