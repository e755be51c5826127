"""The restore engine: read a snapshot's trees and blobs and hand them to a
``RestoreTarget``: a directory, a simulation, an archive stream (tar, tar.gz, tar.zst,
zip, SquashFS) or a program's stdin.
Synchronous; must not import grpc, asyncio or Qt, and never prints.
"""

from comet.agent.restore.directory import DirectoryTarget, Overwrite
from comet.agent.restore.program import ProgramArchiveTarget, ProgramPerFileTarget
from comet.agent.restore.run import DamagedFile, RestoreResult, run_restore
from comet.agent.restore.simulate import SimulateTarget
from comet.agent.restore.squashfs import SquashfsTarget
from comet.agent.restore.tar import Compression, TarTarget
from comet.agent.restore.target import RestoreTarget, TargetRefusedError
from comet.agent.restore.zip import ZipTarget

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
