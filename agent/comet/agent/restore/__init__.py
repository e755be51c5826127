"""The restore engine: read a snapshot's trees and blobs and hand them to a
``RestoreTarget`` (a directory, a simulation; later archives and programs).
Synchronous; must not import grpc, asyncio or Qt.
"""

from comet.agent.restore.directory import DirectoryTarget, Overwrite
from comet.agent.restore.run import RestoreResult, run_restore
from comet.agent.restore.simulate import SimulateTarget
from comet.agent.restore.target import RestoreTarget, TargetRefusedError

__all__ = [
    "DirectoryTarget",
    "Overwrite",
    "RestoreResult",
    "RestoreTarget",
    "SimulateTarget",
    "TargetRefusedError",
    "run_restore",
]
