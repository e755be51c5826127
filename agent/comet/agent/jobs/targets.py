"""Choosing a restore target from what the user asked for."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from comet.agent.cancel import CancelToken
from comet.agent.errors import AgentError
from comet.agent.restore.directory import DirectoryTarget, Overwrite
from comet.agent.restore.program import ProgramArchiveTarget, ProgramPerFileTarget
from comet.agent.restore.simulate import SimulateTarget
from comet.agent.restore.squashfs import SquashfsTarget
from comet.agent.restore.tar import Compression, TarTarget
from comet.agent.restore.target import RestoreTarget
from comet.agent.restore.zip import ZipTarget


class RestoreType(IntEnum):
    """Comet's restore type codes."""

    FILES = 0
    SIMULATE = 1
    PROGRAM_PER_FILE = 2
    PROGRAM_ARCHIVE = 3
    ARCHIVE_FILE = 5


class ArchiveFormat(IntEnum):
    """Comet's archive format codes."""

    TAR = 0
    TAR_GZ = 1
    ZIP = 2
    SQFS = 3
    TAR_ZST = 4


class TargetError(AgentError):
    code = "restore.target"


@dataclass(frozen=True)
class TargetSpec:
    type: RestoreType
    destination: str = ""
    original_paths: bool = False
    overwrite: Overwrite = Overwrite.SKIP
    program_command: str = ""
    archive_format: ArchiveFormat = ArchiveFormat.TAR

    def describe(self) -> str:
        if self.type is RestoreType.FILES:
            return "to original paths" if self.original_paths else f"to {self.destination}"
        if self.type is RestoreType.SIMULATE:
            return "as a simulation (nothing is written)"
        if self.type is RestoreType.ARCHIVE_FILE:
            return f"as {self.archive_format.name.lower()} archive {self.destination}"
        return f"into the program {self.program_command!r}"

    def check(self) -> None:
        """Refuse obviously wrong requests before a job starts."""
        absolute = bool(self.destination) and os.path.isabs(self.destination)
        if self.type is RestoreType.FILES and not self.original_paths and not absolute:
            raise TargetError("restore --to needs an absolute destination directory")
        if self.type is RestoreType.ARCHIVE_FILE and not absolute:
            raise TargetError("an archive restore needs an absolute --output file path")
        if self.type is RestoreType.ARCHIVE_FILE and not Path(self.destination).parent.is_dir():
            raise TargetError(f"the folder of {self.destination} does not exist")
        program = (RestoreType.PROGRAM_PER_FILE, RestoreType.PROGRAM_ARCHIVE)
        if self.type in program and not self.program_command:
            raise TargetError("a program restore needs --program COMMAND")


@contextlib.contextmanager
def open_target(spec: TargetSpec, cancel: CancelToken | None = None) -> Iterator[RestoreTarget]:
    """The target for ``spec``, with any output file it writes opened and closed here. A
    program target's command is stopped as soon as ``cancel`` fires (it may be blocked
    feeding a command that does not read)."""
    if spec.type is RestoreType.FILES:
        yield DirectoryTarget(
            spec.destination or "/",
            overwrite=spec.overwrite,
            original_paths=spec.original_paths,
        )
    elif spec.type is RestoreType.SIMULATE:
        yield SimulateTarget()
    elif spec.type in (RestoreType.PROGRAM_PER_FILE, RestoreType.PROGRAM_ARCHIVE):
        program: ProgramPerFileTarget | ProgramArchiveTarget
        if spec.type is RestoreType.PROGRAM_PER_FILE:
            program = ProgramPerFileTarget(spec.program_command)
        else:
            program = ProgramArchiveTarget(spec.program_command)
        stop = program.stop
        disarm = (cancel or CancelToken()).on_cancel(
            lambda: threading.Thread(target=stop, daemon=True).start()
        )
        try:
            yield program
        finally:
            disarm()
    elif spec.archive_format is ArchiveFormat.SQFS:
        yield SquashfsTarget(spec.destination)
    else:
        # Written under a temporary name and renamed only when the archive is complete.
        final = Path(spec.destination)
        partial = final.with_name(f".{final.name}.partial")
        with open(partial, "wb") as out:
            try:
                if spec.archive_format is ArchiveFormat.ZIP:
                    yield ZipTarget(out)
                else:
                    compression = {
                        ArchiveFormat.TAR_GZ: Compression.GZIP,
                        ArchiveFormat.TAR_ZST: Compression.ZSTD,
                    }.get(spec.archive_format, Compression.NONE)
                    yield TarTarget(out, compression=compression)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
