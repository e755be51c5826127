"""Program-input restores: selected files streamed to a shell command's stdin.

``ProgramPerFileTarget`` runs the command once per regular file, with the file's
content on stdin and ``COMET_RESTORE_PATH`` (the path in the snapshot),
``COMET_RESTORE_NAME`` and ``COMET_RESTORE_SIZE`` in its environment.
``ProgramArchiveTarget`` runs it once with a pax tar stream of everything selected.
A non-zero exit fails the restore (RestoreProgramError with the exit code and stderr).
The command's stdout is discarded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from comet.agent.repository.tree import Node
from comet.agent.restore.child import ChildProcess
from comet.agent.restore.names import show_path
from comet.agent.restore.tar import Compression, TarTarget
from comet.agent.restore.target import RestorePath, TargetRefusedError

SHELL = "/bin/sh"


class ProgramPerFileTarget:
    """Runs ``/bin/sh -c command`` once per selected file, one at a time. Directories,
    symlinks and special files are not passed on (symlinks and specials are warned
    about); each hard-linked name gets its own run."""

    random_access = False
    hard_links = False

    def __init__(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self._command = command
        self._env = dict(os.environ if env is None else env)
        self._cwd = cwd
        self._child: ChildProcess | None = None
        self._handle = 0

    def directory(self, path: RestorePath, node: Node | None) -> bool:
        return True

    def finish_directory(self, path: RestorePath, node: Node) -> None:
        pass

    def begin_file(self, path: RestorePath, node: Node, size: int) -> int | None:
        env = dict(self._env)
        env["COMET_RESTORE_PATH"] = show_path(path)
        env["COMET_RESTORE_NAME"] = path[-1]
        env["COMET_RESTORE_SIZE"] = str(size)
        self._child = ChildProcess(
            [SHELL, "-c", self._command],
            what=f"restore command {self._command!r} for {show_path(path)}",
            env=env,
            cwd=self._cwd,
        )
        self._handle += 1
        return self._handle

    def _current(self, handle: int) -> ChildProcess:
        if self._child is None or handle != self._handle:
            raise AssertionError("program target got data for a file it is not running")
        return self._child

    def write(self, handle: int, offset: int, data: bytes) -> None:
        self._current(handle).write(data)

    def end_file(self, handle: int) -> None:
        child = self._current(handle)
        self._child = None
        child.finish()

    def abort_file(self, handle: int) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None

    def symlink(self, path: RestorePath, node: Node) -> None:
        raise TargetRefusedError("program input takes regular files only (symlink skipped)")

    def hardlink(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        raise AssertionError("hard links are restored as files for program input")

    def special(self, path: RestorePath, node: Node) -> None:
        raise TargetRefusedError(f"program input takes regular files only ({node.type} skipped)")

    def stop(self) -> None:
        """Stop the running command (the job was cancelled); thread-safe."""
        child = self._child
        if child is not None:
            child.stop()

    def close(self) -> None:
        self.abort_file(self._handle)


class ProgramArchiveTarget(TarTarget):
    """Runs ``/bin/sh -c command`` once, with a pax tar stream (optionally compressed)
    of every selected node on its stdin. The command starts with the restore."""

    def __init__(
        self,
        command: str,
        *,
        compression: Compression | str = Compression.NONE,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self._child = ChildProcess(
            [SHELL, "-c", command],
            what=f"restore command {command!r}",
            env=env,
            cwd=cwd,
        )
        super().__init__(self._child, compression=compression)
        self._done = False

    def finish(self) -> None:
        super().finish()
        self._done = True
        self._child.finish()

    def stop(self) -> None:
        """Stop the command (the job was cancelled); thread-safe."""
        self._child.stop()

    def close(self) -> None:
        super().close()
        if not self._done:
            self._child.kill()
