"""Protected Items as the agent sees them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ItemType(IntEnum):
    FILES = 1
    PROGRAM = 2


@dataclass(frozen=True)
class ItemSpec:
    item_id: str
    name: str
    type: ItemType
    owner_device_id: str = ""
    includes: tuple[str, ...] = ()
    exclude_globs: tuple[str, ...] = ()
    exclude_regexes: tuple[str, ...] = ()
    rescan_unchanged: bool = False
    program_command: str = ""
    program_save_as: str = ""
    pre_commands: tuple[str, ...] = ()
    post_commands: tuple[str, ...] = ()
