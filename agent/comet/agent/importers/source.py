"""What ``detect`` reports: one importable foreign configuration, and the detection result."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from comet.agent.errors import AgentError


class ImporterError(AgentError):
    """A foreign configuration cannot be read or understood as a whole; the message names
    the file and what is wrong with it. Per-setting problems are plan warnings instead."""

    code = "import"


class Product(enum.StrEnum):
    """The foreign products an import understands."""

    BORGMATIC = "borgmatic"
    RESTICPROFILE = "resticprofile"
    AUTORESTIC = "autorestic"
    RESTIC_ENV = "restic-env"


ENVIRONMENT_LABEL = "environment"
"""How an environment-variable source is named where a file path would be shown."""


@dataclass(frozen=True)
class ImportSource:
    """One importable setup.

    ``path`` is the configuration file, or None for the agent's own environment variables
    (their relevant, non-secret values are then carried in ``environment``). ``section``
    names the part of a file this source covers when a file holds several setups (a
    resticprofile profile, an autorestic location); it is empty when the whole file is one
    setup. ``home`` is the user's home directory, used to expand ``~`` in paths.
    """

    source_id: str
    product: Product
    path: Path | None
    description: str
    section: str = ""
    home: Path = Path("/")
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def location(self) -> str:
        """The file (and section) as a person would name it."""
        where = str(self.path) if self.path is not None else ENVIRONMENT_LABEL
        return f"{where} [{self.section}]" if self.section else where


@dataclass(frozen=True)
class DetectResult:
    """Importable setups, in a stable order, and why other candidate files were skipped."""

    sources: list[ImportSource] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def source_id(product: Product, path: Path | None, section: str = "") -> str:
    """A short id that stays the same for the same product, file and section."""
    where = str(path) if path is not None else f"<{ENVIRONMENT_LABEL}>"
    digest = hashlib.sha256(f"{product.value}\0{where}\0{section}".encode()).hexdigest()
    return digest[:12]
