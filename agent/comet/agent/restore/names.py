"""Path-name rules every restore shares: which snapshot names are safe to restore and
how a snapshot path is shown or turned into an archive member name.

The engine refuses unsafe names before any target sees them; archive targets check
again with the same rule, so no archive member is ever absolute or climbs with ``..``.
"""

from __future__ import annotations

from collections.abc import Sequence

from comet.agent.restore.target import RestorePath, TargetRefusedError


def valid_name(name: str) -> bool:
    """True if ``name`` is one safe path component: not empty, ``.`` or ``..``, and
    without ``/`` or NUL."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def show_path(path: Sequence[str]) -> str:
    """The snapshot path as people see it: ``/home/u/file``."""
    return "/" + "/".join(path)


def parse_path(text: str) -> RestorePath:
    """Split an absolute snapshot path (``/home/u``) into checked components.

    Raises ValueError if a component is unsafe."""
    parts = tuple(c for c in text.split("/") if c)
    if any(not valid_name(c) for c in parts):
        raise ValueError(f"invalid snapshot path: {text!r}")
    return parts


def member_name(path: RestorePath) -> str:
    """The relative archive member name for ``path`` (``home/u/file``).

    Raises TargetRefusedError for an empty or unsafe path."""
    if not path or not all(valid_name(c) for c in path):
        raise TargetRefusedError(f"unsafe archive member name {show_path(path)!r}")
    return "/".join(path)
