"""``ToolClient``: what the run loop needs from each backup tool it compares, and
``Case``, one (tool, corpus, run) combination with its own fresh repository.
Imports nothing from Comet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from bench.corpus import Corpus
from bench.measure import Measurement


@dataclass(frozen=True)
class Case:
    """One series of backups into a fresh repository: ``repo_dir`` does not exist yet;
    ``home_dir`` exists and holds the tool's caches, config and logs."""

    corpus: Corpus
    run: int
    repo_dir: Path
    home_dir: Path

    @property
    def log(self) -> Path:
        return self.home_dir / "tool.log"


class ToolClient(Protocol):
    """Drives one backup tool. Every timed method returns one Measurement and raises
    BenchError if the tool fails."""

    name: str

    def version(self) -> str:
        """The tool's version string, for the results file."""
        ...

    def settings(self) -> str:
        """The settings the comparison relies on (encryption, compression), one line."""
        ...

    def init(self, case: Case) -> None:
        """Create an empty encrypted repository at ``case.repo_dir``. Untimed."""
        ...

    def backup(self, case: Case) -> Measurement:
        """Back up ``case.corpus.root`` (by absolute path) into the case's repository;
        later calls must find the earlier snapshots as their parent."""
        ...

    def restore(self, case: Case, dest: Path) -> Measurement:
        """Restore the latest snapshot of the case under ``dest`` (which is empty), so
        that the corpus root lands at ``dest / root.relative_to('/')``."""
        ...

    def close(self) -> None:
        """Stop whatever the client started. Idempotent."""
        ...


@runtime_checkable
class FindingTool(Protocol):
    """A tool that can search a snapshot by file name (the many-files rows)."""

    name: str

    def find(self, case: Case, pattern: str) -> Measurement:
        """Search the case's latest snapshot for names matching the glob ``pattern``,
        walking all of it; time it and take the peak RSS of the process doing it."""
        ...


@runtime_checkable
class ListingTool(Protocol):
    """A tool that can list a whole snapshot recursively (the many-files rows)."""

    name: str

    def list_all(self, case: Case) -> Measurement:
        """List every entry of the case's latest snapshot (``ls -R``), output thrown
        away; time it and take the peak RSS of the process doing the walk."""
        ...
