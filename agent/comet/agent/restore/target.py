"""The ``RestoreTarget`` protocol: where restored nodes go.

Paths are tuples of components from the snapshot root, already validated by the engine
(no empty, ``.``, ``..``, ``/`` or NUL components). Per-node problems are reported by
raising ``OSError`` or ``TargetRefusedError``; the engine turns them into warnings and
goes on. Any other exception ends the restore.

Call order. For every directory, ``directory`` comes before anything inside it and
``finish_directory`` after everything inside it. A file is ``begin_file``, then
``write`` calls, then ``end_file``. When ``random_access`` is False, each file's writes
come in offset order and one file is finished before the next begins (archive and
program targets). When True, the engine may begin many files, interleave their writes in
repository pack order, and end them later (directory targets). ``hardlink`` comes after
the ``end_file`` of the file it links to.

Optional members (looked up with ``getattr``, so older targets need none of them):
``hard_links: bool`` (default True) -- when False the engine never calls ``hardlink`` and
hands every linked name over as a full file with its own content (zip, program input).
``finish() -> None`` -- called once after everything was restored successfully, before
``close``; archive targets complete their stream there (end-of-archive marker, central
directory), so a failed restore never leaves an archive that looks complete.
``deferred_failures(*, wait: bool) -> list[tuple[RestorePath, Exception]]`` -- for a
target that finishes files in the background after ``end_file`` returned: the files
that failed since the last call, each with its OSError or TargetRefusedError; ``wait``
first waits for every file. The engine calls it after every window of files and, with
``wait``, before hard links and directory metadata.
"""

from __future__ import annotations

from typing import Protocol

from comet.agent.errors import RestoreError
from comet.agent.repository.tree import Node

RestorePath = tuple[str, ...]


class TargetRefusedError(RestoreError):
    """The target will not restore this node (unsafe or unsupported here)."""

    code = "restore.refused"


class RestoreTarget(Protocol):
    random_access: bool

    def directory(self, path: RestorePath, node: Node | None) -> bool:
        """Make the directory exist; ``node`` is None for the snapshot root. Return True
        if it was created (False if it already existed)."""
        ...

    def finish_directory(self, path: RestorePath, node: Node) -> None:
        """Apply the directory's metadata once everything inside it is restored."""
        ...

    def begin_file(self, path: RestorePath, node: Node, size: int) -> int | None:
        """Start a regular file of ``size`` bytes; return a handle, or None to skip it
        (for example because it exists and the overwrite policy keeps it)."""
        ...

    def write(self, handle: int, offset: int, data: bytes) -> None:
        """Write content at ``offset``. Data that is all zeros may be left as a hole."""
        ...

    def end_file(self, handle: int) -> None:
        """Finish the file: apply metadata and make it visible under its name."""
        ...

    def abort_file(self, handle: int) -> None:
        """Drop a file that could not be completed. Never raises."""
        ...

    def symlink(self, path: RestorePath, node: Node) -> None:
        """Create a symbolic link to ``node.target``."""
        ...

    def hardlink(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        """Create a hard link to the already restored file ``existing``."""
        ...

    def special(self, path: RestorePath, node: Node) -> None:
        """Create a fifo, device node or socket (metadata only)."""
        ...

    def close(self) -> None:
        """Release resources. Called once, also after errors."""
        ...
