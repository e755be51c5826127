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
from comet.agent.local_paths import check_folder
from comet.agent.restore.directory import DirectoryTarget, Dropped, Overwrite
from comet.agent.restore.simulate import SimulateTarget
from comet.agent.restore.target import RestoreTarget


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
    restore_privileged: bool = False

    def describe(self) -> str:
        if self.type is RestoreType.FILES:
            return "to original paths" if self.original_paths else f"to {self.destination}"
        if self.type is RestoreType.SIMULATE:
            return "as a simulation (nothing is written)"
        if self.type is RestoreType.ARCHIVE_FILE:
            return f"as {self.archive_format.name.lower()} archive {self.destination}"
        return f"into the program {self.program_command!r}"

    def check(self) -> None:
        """Refuse wrong requests before a job starts: one destination only, with the
        options that belong to it (a second destination is never silently ignored)."""
        program = (RestoreType.PROGRAM_PER_FILE, RestoreType.PROGRAM_ARCHIVE)
        conflicts = [
            what
            for what, given, allowed in (
                ("a destination path", bool(self.destination), self._has_path),
                ("original paths", self.original_paths, self.type is RestoreType.FILES),
                ("a program", bool(self.program_command), self.type in program),
            )
            if given and not allowed
        ]
        if self.original_paths and self.destination:
            conflicts.append("a destination path")
        if conflicts:
            raise TargetError(
                f"a restore has one destination: {self.describe_type()} does not take "
                + " or ".join(conflicts)
            )
        overwrites = self.overwrite is not Overwrite.SKIP
        if self.overwrite is Overwrite.IF_NEWER and self.type is not RestoreType.FILES:
            raise TargetError("overwrite-if-newer applies to files and folders restores only")
        if overwrites and not self._has_path and not self.original_paths:
            raise TargetError(f"{self.describe_type()} overwrites nothing: drop --overwrite")
        absolute = bool(self.destination) and os.path.isabs(self.destination)
        if self.type is RestoreType.FILES and not self.original_paths and not absolute:
            raise TargetError("restore --to needs an absolute destination directory")
        if self.type is RestoreType.FILES and self.destination:
            check_folder(Path(self.destination), option="--to")
        if self.type is RestoreType.ARCHIVE_FILE and not absolute:
            raise TargetError("an archive restore needs an absolute --output file path")
        if self.type is RestoreType.ARCHIVE_FILE:
            check_output_path(Path(self.destination), replace=overwrites)
        if self.type in program and not self.program_command:
            raise TargetError("a program restore needs --program COMMAND")

    @property
    def _has_path(self) -> bool:
        return self.type in (RestoreType.FILES, RestoreType.ARCHIVE_FILE)

    def describe_type(self) -> str:
        return {
            RestoreType.FILES: "a files and folders restore",
            RestoreType.SIMULATE: "a simulated restore",
            RestoreType.PROGRAM_PER_FILE: "a per-file program restore",
            RestoreType.PROGRAM_ARCHIVE: "a program archive restore",
            RestoreType.ARCHIVE_FILE: "an archive file restore",
        }[self.type]


def check_output_path(path: Path, *, replace: bool) -> None:
    """One-line errors, before a job starts, for an archive output path that cannot be
    written safely (``OutputFile`` checks again, race-free, when it writes)."""
    if not path.parent.is_dir():
        raise TargetError(f"the folder of {path} does not exist")
    if path.is_symlink():
        raise TargetError(f"{path} is a symbolic link; refusing to write through it")
    if path.is_dir():
        raise TargetError(f"{path} is a directory; give --output a file name")
    if path.exists() and not replace:
        raise TargetError(f"{path} exists; choose to overwrite it (--overwrite) or another name")


@contextlib.contextmanager
def open_target(
    spec: TargetSpec, cancel: CancelToken | None = None, *, on_drop: Dropped | None = None
) -> Iterator[RestoreTarget]:
    """The target for ``spec``, with any output file it writes opened and closed here. A
    program target's command is stopped as soon as ``cancel`` fires (it may be blocked
    feeding a command that does not read). ``on_drop`` hears of privileged metadata a
    directory restore leaves out.

    The program and archive writers (tarfile, zipfile, gzip: ~2 MiB resident) are
    imported by the branch that uses them, so neither an idle agent nor a backup or
    directory restore carries them."""
    if spec.type is RestoreType.FILES:
        yield DirectoryTarget(
            spec.destination or "/",
            overwrite=spec.overwrite,
            original_paths=spec.original_paths,
            privileged=spec.restore_privileged,
            on_drop=on_drop,
        )
    elif spec.type is RestoreType.SIMULATE:
        yield SimulateTarget()
    elif spec.type in (RestoreType.PROGRAM_PER_FILE, RestoreType.PROGRAM_ARCHIVE):
        from comet.agent.restore.program import ProgramArchiveTarget, ProgramPerFileTarget

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
        from comet.agent.restore.squashfs import SquashfsTarget

        yield SquashfsTarget(spec.destination, replace=spec.overwrite is Overwrite.OVERWRITE)
    else:
        from comet.agent.restore.output import OutputFile
        from comet.agent.restore.tar import Compression, TarTarget
        from comet.agent.restore.zip import ZipTarget

        # Written to a private temporary file and renamed only when complete.
        output = OutputFile(spec.destination, replace=spec.overwrite is Overwrite.OVERWRITE)
        try:
            with open(output.fd, "wb", closefd=False) as out:
                if spec.archive_format is ArchiveFormat.ZIP:
                    yield ZipTarget(out)
                else:
                    compression = {
                        ArchiveFormat.TAR_GZ: Compression.GZIP,
                        ArchiveFormat.TAR_ZST: Compression.ZSTD,
                    }.get(spec.archive_format, Compression.NONE)
                    yield TarTarget(out, compression=compression)
                out.flush()
            output.commit()
        finally:
            output.close()
