"""Choosing a restore target from what the user asked for."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from comet.agent.errors import AgentError
from comet.agent.restore.directory import DirectoryTarget, Overwrite
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
def open_target(spec: TargetSpec) -> Iterator[RestoreTarget]:
    """The target for ``spec``, with any output file it writes opened and closed here."""
    if spec.type is RestoreType.FILES:
        yield DirectoryTarget(
            spec.destination or "/",
            overwrite=spec.overwrite,
            original_paths=spec.original_paths,
        )
    elif spec.type is RestoreType.SIMULATE:
        yield SimulateTarget()
    else:
        raise TargetError(f"restore type {spec.type.name} is not available on this agent")
