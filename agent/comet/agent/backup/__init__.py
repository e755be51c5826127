"""The backup engine: walk a source, chunk and deduplicate its content into a
repository, and commit a snapshot. Synchronous; must not import grpc, asyncio or Qt.
"""

from comet.agent.backup.options import BackupOptions, BackupResult, FilesSource, ProgramSource
from comet.agent.backup.run import run_backup

__all__ = ["BackupOptions", "BackupResult", "FilesSource", "ProgramSource", "run_backup"]
