"""Restic backup settings shared by resticprofile, autorestic and environment files:
exclude options and exclude files."""

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
            path = Path(name.replace("~", str(home), 1) if name.startswith("~/") else name)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            try:
                lines = read_text(path).splitlines()
            except ImporterError as e:
                excludes.warnings.append(f"exclude file {name!r} was not imported: {e}")
                continue
            for line in lines:
                excludes.add(convert_restic(line, home=home, ignore_case=ignore_case))
    return excludes
