"""``SquashfsTarget``: restore into a SquashFS image (mountable read-only).

No Python library writes SquashFS, so a pax tar stream is piped into ``tar2sqfs``
(Debian package ``squashfs-tools-ng``), which builds the image as the stream arrives:
nothing is spooled. A failed restore kills the tool and removes the partial image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from comet.agent.errors import RestoreProgramError
from comet.agent.restore.child import ChildProcess
from comet.agent.restore.output import OutputFile
from comet.agent.restore.tar import TarTarget

PACKAGE = "squashfs-tools-ng"


class SquashfsTarget(TarTarget):
    """Writes ``output_path`` zstd-compressed, keeping ownership, modes, mtimes, xattrs,
    symlinks and hard links. An existing file there is replaced only with ``replace``;
    a symlink or directory there is refused (``OutputFile``). The tool writes into the
    private temporary file through ``/proc/self/fd``, never through a path someone
    else could redirect."""

    def __init__(
        self, output_path: Path | str, *, tool: str = "tar2sqfs", replace: bool = True
    ) -> None:
        self._path = Path(output_path)
        found = shutil.which(tool)
        if found is None:
            raise RestoreProgramError(
                f"SquashFS output needs the {tool} program, which is not installed "
                f"(Debian/Ubuntu package {PACKAGE})"
            )
        self._output = OutputFile(self._path, replace=replace)
        try:
            self._child = ChildProcess(
                # --no-skip: a tar record the tool cannot take fails the image, never
                # silently drops a file.
                [found, "-c", "zstd", "--quiet", "--force", "--no-skip", self._output.proc_path],
                what=f"{tool} (writing {self._path})",
                pass_fds=(self._output.fd,),
            )
        except BaseException:
            self._output.close()
            raise
        super().__init__(self._child)
        self._done = False

    def finish(self) -> None:
        super().finish()
        self._child.finish()
        self._output.commit()
        self._done = True

    def close(self) -> None:
        super().close()
        if not self._done:
            self._child.kill()
        self._output.close()
