"""``OutputFile``: the one file an archive restore writes, made so that nobody who can
write in its folder can redirect it.

The folder is opened once; the file is created there at a fresh temporary name with
``O_CREAT|O_EXCL|O_NOFOLLOW`` and mode 0600, written through its descriptor, and only
when complete given its final mode and renamed over the final name within the held
folder descriptor. A symlink or a directory at the final name is refused and left as
it is; an existing file is replaced only when ``replace`` is True.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from comet.agent.restore.directory import open_directory, process_umask
from comet.agent.restore.target import TargetRefusedError

_FINAL_MODE = 0o666


class OutputFile:
    """Create with the final path; write through ``fd`` (or ``proc_path`` for a child
    given ``fd`` in ``pass_fds``); then ``commit`` or ``discard``."""

    def __init__(self, path: Path | str, *, replace: bool = False) -> None:
        self.path = Path(path)
        self._name = self.path.name
        if not self._name or self._name in (".", ".."):
            raise TargetRefusedError(f"{self.path} is not a file name")
        self._replace = replace
        self._dir = open_directory(self.path.parent)
        self.fd = -1
        try:
            self._check_final()
            self._temp = f".{self._name[:100]}.comet-{secrets.token_hex(6)}.partial"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(self._temp, flags, 0o600, dir_fd=self._dir)
        except BaseException:
            os.close(self._dir)
            raise

    @property
    def proc_path(self) -> str:
        """A path naming exactly this file, for a child process that inherited ``fd``."""
        return f"/proc/self/fd/{self.fd}"

    def _check_final(self) -> None:
        try:
            st = os.stat(self._name, dir_fd=self._dir, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise TargetRefusedError(
                f"{self.path} is a symbolic link; refusing to write through it"
            )
        if stat.S_ISDIR(st.st_mode):
            raise TargetRefusedError(f"{self.path} is a directory; give --output a file name")
        if not stat.S_ISREG(st.st_mode):
            raise TargetRefusedError(f"{self.path} exists and is not a regular file")
        if not self._replace:
            raise TargetRefusedError(
                f"{self.path} exists; choose to overwrite it (--overwrite) or another name"
            )

    def commit(self) -> None:
        """Make the complete file durable and visible under its final name."""
        os.fsync(self.fd)
        os.fchmod(self.fd, _FINAL_MODE & ~process_umask())
        self._check_final()  # a symlink planted meanwhile is refused, not replaced
        os.replace(self._temp, self._name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        self._temp = ""
        with contextlib.suppress(OSError):
            os.fsync(self._dir)

    def discard(self) -> None:
        """Remove the unfinished file. Never raises."""
        if self._temp:
            with contextlib.suppress(OSError):
                os.unlink(self._temp, dir_fd=self._dir)
            self._temp = ""

    def close(self) -> None:
        """Discard unless committed, and release the descriptors. Idempotent."""
        self.discard()
        for fd in (self.fd, self._dir):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = self._dir = -1
