"""The restore engine: read a snapshot's trees and blobs and hand them to a
``RestoreTarget``: a directory, a simulation, an archive stream (tar, tar.gz, tar.zst,
zip, SquashFS) or a program's stdin.
Synchronous; must not import grpc, asyncio or Qt, and never prints.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comet.agent.restore.directory import DirectoryTarget, Overwrite
    from comet.agent.restore.program import ProgramArchiveTarget, ProgramPerFileTarget
    from comet.agent.restore.run import DamagedFile, RestoreResult, run_restore
    from comet.agent.restore.simulate import SimulateTarget
    from comet.agent.restore.squashfs import SquashfsTarget
    from comet.agent.restore.tar import Compression, TarTarget
    from comet.agent.restore.target import RestoreTarget, TargetRefusedError
    from comet.agent.restore.zip import ZipTarget

# The names below are loaded from their modules on first use, not with the package: the
# idle agent imports small parts of it (path names, the overwrite modes) and should not
# carry every archive writer (tarfile, zipfile, gzip) until a restore needs one.
_MODULE_OF = {
    "Compression": "tar",
    "DamagedFile": "run",
    "DirectoryTarget": "directory",
    "Overwrite": "directory",
    "ProgramArchiveTarget": "program",
    "ProgramPerFileTarget": "program",
    "RestoreResult": "run",
    "RestoreTarget": "target",
    "SimulateTarget": "simulate",
    "SquashfsTarget": "squashfs",
    "TarTarget": "tar",
    "TargetRefusedError": "target",
    "ZipTarget": "zip",
    "run_restore": "run",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)


__all__ = [
    "Compression",
    "DamagedFile",
    "DirectoryTarget",
    "Overwrite",
    "ProgramArchiveTarget",
    "ProgramPerFileTarget",
    "RestoreResult",
    "RestoreTarget",
    "SimulateTarget",
    "SquashfsTarget",
    "TarTarget",
    "TargetRefusedError",
    "ZipTarget",
    "run_restore",
]
