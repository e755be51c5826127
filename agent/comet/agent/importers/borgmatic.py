"""Reading a borgmatic configuration file (flat format of borgmatic ≥ 1.8, or the older
format with ``location:``/``storage:``/``retention:``/``hooks:`` sections).

One file is one setup: a Files and Folders item for ``source_directories`` (plus roots of
``patterns``), a Program Output item per database hook, one repository per entry of
``repositories`` and the ``keep_*`` rules. borgmatic has no schedule of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comet.agent.importers.config_file import (
    as_mapping,
    as_str_list,
    load_yaml_mapping,
    read_text,
)
from comet.agent.importers.databases import database_items
from comet.agent.importers.files_item import files_item, resolve_includes
from comet.agent.importers.foreign import ForeignRepository, ForeignSetup, RepositoryDialect
from comet.agent.importers.patterns import (
    Excludes,
    convert_borg,
    convert_borg_pattern_line,
)
from comet.agent.importers.retention import keep_rules_from
from comet.agent.importers.source import ImporterError

_LEGACY_SECTIONS = ("location", "storage", "retention", "consistency", "hooks", "output")
_UNSUPPORTED_FLAGS = (
    "one_file_system",
    "exclude_caches",
    "exclude_if_present",
    "exclude_nodump",
    "keep_exclude_tags",
)
SCHEDULE_NOTE = "borgmatic has no schedule of its own (it usually ran from cron or a systemd timer)"


def read_borgmatic(path: Path, *, home: Path) -> ForeignSetup:
    """The setup in one borgmatic file. Raises ImporterError if the file cannot be read or
    holds neither sources, databases nor repositories."""
    settings = _flatten(load_yaml_mapping(path))
    warnings: list[str] = []
    workdir = settings.get("working_directory")
    base_dir = Path(workdir) if isinstance(workdir, str) and workdir.startswith("/") else None

    excludes, roots = _excludes(settings, warnings, home)
    includes, include_warnings = resolve_includes(
        [*as_str_list(settings.get("source_directories")), *roots], home=home, base_dir=base_dir
    )
    warnings += include_warnings + excludes.warnings
    for flag in _UNSUPPORTED_FLAGS:
        if settings.get(flag):
            warnings.append(f"borgmatic option {flag} has no Comet equivalent; left out")

    pre, post = _commands(settings, warnings)
    databases, db_warnings = database_items(settings)
    warnings += db_warnings
    repositories = _repositories(settings.get("repositories"), warnings)

    files = files_item(
        f"borgmatic {path.name}", includes, excludes, pre_commands=pre, post_commands=post
    )
    items = ([files] if files else []) + databases
    if not items and not repositories:
        raise ImporterError(f"{path}: no source directories, databases or repositories")
    return ForeignSetup(
        name=path.name,
        items=tuple(items),
        repositories=tuple(repositories),
        keep=keep_rules_from(settings, separator="_"),
        schedule_note=SCHEDULE_NOTE,
        warnings=tuple(warnings),
    )


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Both formats as one flat mapping: legacy section contents, then top-level keys."""
    flat: dict[str, Any] = {}
    for section in _LEGACY_SECTIONS:
        flat.update(as_mapping(data.get(section)))
    flat.update({k: v for k, v in data.items() if k not in _LEGACY_SECTIONS})
    return flat


def _excludes(
    settings: Mapping[str, Any], warnings: list[str], home: Path
) -> tuple[Excludes, list[str]]:
    excludes = Excludes()
    for pattern in as_str_list(settings.get("exclude_patterns")):
        excludes.add(convert_borg(pattern, home=home))
    for name in as_str_list(settings.get("exclude_from")):
        for line in _lines_of(name, warnings):
            excludes.add(convert_borg(line))
    lines = as_str_list(settings.get("patterns"))
    for name in as_str_list(settings.get("patterns_from")):
        lines += _lines_of(name, warnings)
    roots: list[str] = []
    style = "sh"  # borg's default style for pattern lines
    for line in lines:
        kind, converted = convert_borg_pattern_line(line, style)
        if kind == "root" and converted is not None:
            roots.append(converted.glob)
        elif kind == "style" and converted is not None:
            style = converted.glob
        else:
            excludes.add(converted)
    return excludes, roots


def _lines_of(name: str, warnings: list[str]) -> list[str]:
    try:
        return read_text(Path(name)).splitlines()
    except ImporterError as e:
        warnings.append(f"exclude file {name!r} was not imported: {e}")
        return []


def _commands(settings: Mapping[str, Any], warnings: list[str]) -> tuple[list[str], list[str]]:
    pre = as_str_list(settings.get("before_backup"))
    post = as_str_list(settings.get("after_backup"))
    for key in ("before_everything", "after_everything", "on_error"):
        if settings.get(key):
            warnings.append(f"borgmatic {key} commands were not imported")
    commands = settings.get("commands")
    for entry in commands if isinstance(commands, list) else []:
        entry = as_mapping(entry)
        when = as_str_list(entry.get("when"))
        run = as_str_list(entry.get("run"))
        if when and "create" not in when:
            continue
        states = as_str_list(entry.get("states")) or ["finish"]
        if "before" in entry:
            pre += run
        elif "after" in entry and "finish" in states:
            post += run
        else:
            warnings.append(f"borgmatic command hook {run!r} (on failure) was not imported")
    return pre, post


def _repositories(value: object, warnings: list[str]) -> list[ForeignRepository]:
    out: list[ForeignRepository] = []
    for entry in value if isinstance(value, list) else as_str_list(value):
        if isinstance(entry, str):
            location, label = entry, ""
        elif isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
            location, label = entry["path"], str(entry.get("label") or "")
        else:
            warnings.append(f"repository entry {entry!r} has no path; left out")
            continue
        out.append(ForeignRepository(location.strip(), RepositoryDialect.BORG, label))
    return out
