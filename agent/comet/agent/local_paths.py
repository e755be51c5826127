"""Checks of paths on this device that a request names (a local vault's folder, a
restore's ``--to``, a Protected Item's includes), made before anything is written, so
a wrong path is refused with a sentence instead of failing half-way."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from comet.agent.errors import LocalPathError, os_error_sentence


def check_folder(path: Path, *, option: str) -> None:
    """LocalPathError unless ``path`` is a folder, or can be created as one: the
    nearest existing path along it is a folder this process may write in."""
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        kind = "a file, not a folder" if existing.is_file() else "not a folder"
        if existing == path:
            raise LocalPathError(
                f"{path} is {kind}; give {option} a folder (a missing one is created)",
                errno_name="ENOTDIR",
            )
        raise LocalPathError(
            f"{path} cannot be a folder: {existing} is {kind}; give {option} a path whose"
            " parents are folders",
            errno_name="ENOTDIR",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        code = errno.EROFS if read_only else errno.EACCES
        refused = OSError(code, os.strerror(code), str(existing))
        raise LocalPathError(
            f"cannot write in {existing}: {os_error_sentence(refused, path='')}",
            errno_name=errno.errorcode[code],
        )


def missing_paths(paths: Iterable[str]) -> list[str]:
    """The paths that do not exist on this device (a dangling symlink exists)."""
    return [p for p in paths if not os.path.lexists(p)]
