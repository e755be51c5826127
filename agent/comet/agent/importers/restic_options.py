"""Restic backup settings shared by resticprofile, autorestic and environment files:
exclude options and exclude files, and the lists of paths to back up given with
``--files-from`` / ``--files-from-verbatim`` / ``--files-from-raw``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from comet.agent.importers.config_file import read_text
from comet.agent.importers.patterns import Excludes, convert_restic
from comet.agent.importers.source import ImporterError

UNSUPPORTED_BACKUP_FLAGS = (
    "exclude-caches",
    "exclude-if-present",
    "exclude-larger-than",
    "one-file-system",
)


def restic_excludes(
    *,
    patterns: Iterable[str] = (),
    ipatterns: Iterable[str] = (),
    exclude_files: Iterable[str] = (),
    iexclude_files: Iterable[str] = (),
    home: Path,
    base_dir: Path | None,
) -> Excludes:
    """Restic ``--exclude``/``--iexclude`` patterns and ``--exclude-file`` contents.
    An exclude file that cannot be read becomes a warning."""
    excludes = Excludes()
    for p in patterns:
        excludes.add(convert_restic(p, home=home))
    for p in ipatterns:
        excludes.add(convert_restic(p, home=home, ignore_case=True))
    for files, ignore_case in ((exclude_files, False), (iexclude_files, True)):
        for name in files:
            try:
                lines = read_text(_path_of(name, home, base_dir)).splitlines()
            except ImporterError as e:
                excludes.warnings.append(f"exclude file {name!r} was not imported: {e}")
                continue
            for line in lines:
                excludes.add(convert_restic(line, home=home, ignore_case=ignore_case))
    return excludes


def restic_files_from(
    *,
    files: Iterable[str] = (),
    verbatim: Iterable[str] = (),
    raw: Iterable[str] = (),
    home: Path,
    base_dir: Path | None,
) -> tuple[list[str], list[str]]:
    """The paths listed in restic ``--files-from`` files (one per line; blank lines and
    lines starting with ``#`` are skipped; globs are expanded later, as restic does),
    ``--files-from-verbatim`` (every non-empty line is a path) and ``--files-from-raw``
    (NUL-separated), and warnings for files that cannot be read."""
    paths: list[str] = []
    warnings: list[str] = []
    for names, kind in ((files, "files"), (verbatim, "verbatim"), (raw, "raw")):
        for name in names:
            path = _path_of(name, home, base_dir)
            try:
                text = read_text(path)
            except ImporterError as e:
                warnings.append(f"files-from list {name!r} was not imported: {e}")
                continue
            if kind == "raw":
                paths += [p for p in text.split("\0") if p]
            elif kind == "verbatim":
                paths += [line for line in text.splitlines() if line]
            else:
                paths += [
                    line.strip()
                    for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")
                ]
    return paths, warnings


def _path_of(name: str, home: Path, base_dir: Path | None) -> Path:
    path = Path(str(home) + name[1:] if name.startswith("~/") else name)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path
