"""Reading autorestic configurations (``.autorestic.yml``).

Each location is its own setup (and its own ImportSource), since locations have their own
``cron``, retention (``options.forget.keep-*``) and backends. Relative paths are taken from
the configuration file's folder, as autorestic does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comet.agent.importers.config_file import as_mapping, as_str_list, load_yaml_mapping
from comet.agent.importers.files_item import files_item, resolve_includes
from comet.agent.importers.foreign import (
    ForeignRepository,
    ForeignSchedule,
    ForeignSetup,
    RepositoryDialect,
    ScheduleSyntax,
)
from comet.agent.importers.restic_options import (
    UNSUPPORTED_BACKUP_FLAGS,
    restic_excludes,
    restic_files_from,
)
from comet.agent.importers.retention import keep_rules_from
from comet.agent.importers.source import ImporterError


def read_autorestic(path: Path, *, home: Path) -> tuple[dict[str, ForeignSetup], list[str]]:
    """Setups by location name, and why other locations were skipped. Raises
    ImporterError if the file cannot be read or has no usable location."""
    data = load_yaml_mapping(path)
    locations = as_mapping(data.get("locations"))
    backends = as_mapping(data.get("backends"))
    setups: dict[str, ForeignSetup] = {}
    skipped: list[str] = []
    for name, body in locations.items():
        location = as_mapping(body)
        if location.get("type") == "volume":
            skipped.append(f"{path}: location {name!r} backs up a Docker volume; skipped")
            continue
        if not as_str_list(location.get("from")):
            skipped.append(f"{path}: location {name!r} has no 'from' paths; skipped")
            continue
        setups[name] = _setup(name, location, backends, path, home)
    if not setups:
        raise ImporterError(f"{path}: no location to import")
    return setups, skipped


def _option(options: Mapping[str, Any], key: str) -> list[str]:
    return as_str_list(options.get(key))


def _setup(
    name: str, location: Mapping[str, Any], backends: Mapping[str, Any], path: Path, home: Path
) -> ForeignSetup:
    warnings: list[str] = []
    options = as_mapping(location.get("options"))
    backup = as_mapping(options.get("backup"))
    listed, listed_warnings = restic_files_from(
        files=_option(backup, "files-from"),
        verbatim=_option(backup, "files-from-verbatim"),
        raw=_option(backup, "files-from-raw"),
        home=home,
        base_dir=path.parent,
    )
    warnings += listed_warnings
    includes, include_warnings = resolve_includes(
        [*as_str_list(location.get("from")), *listed], home=home, base_dir=path.parent
    )
    excludes = restic_excludes(
        patterns=_option(backup, "exclude"),
        ipatterns=_option(backup, "iexclude"),
        exclude_files=_option(backup, "exclude-file"),
        iexclude_files=_option(backup, "iexclude-file"),
        home=home,
        base_dir=path.parent,
    )
    warnings += include_warnings + excludes.warnings
    for flag in UNSUPPORTED_BACKUP_FLAGS:
        if backup.get(flag):
            warnings.append(f"restic option {flag} has no Comet equivalent; left out")
    hooks = as_mapping(location.get("hooks"))
    for key in ("success", "failure"):
        if hooks.get(key):
            warnings.append(f"autorestic {key} hooks were not imported")
    item = files_item(
        f"autorestic {name}",
        includes,
        excludes,
        pre_commands=as_str_list(hooks.get("before")),
        post_commands=as_str_list(hooks.get("after")),
    )
    forget = {k: _first(v) for k, v in as_mapping(options.get("forget")).items()}
    cron = location.get("cron")
    return ForeignSetup(
        name=f"location {name!r}",
        items=(item,) if item else (),
        repositories=tuple(_repositories(location.get("to"), backends, path, home, warnings)),
        keep=keep_rules_from(forget, separator="-"),
        schedules=(ForeignSchedule(ScheduleSyntax.CRON, cron),) if isinstance(cron, str) else (),
        schedule_note="the location has no cron schedule",
        warnings=tuple(warnings),
    )


def _first(value: object) -> object:
    """autorestic lets every option be a list (repeated flag); restic uses the last."""
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def _repositories(
    to: object, backends: Mapping[str, Any], path: Path, home: Path, warnings: list[str]
) -> list[ForeignRepository]:
    out: list[ForeignRepository] = []
    for backend_name in as_str_list(to):
        backend = as_mapping(backends.get(backend_name))
        kind = str(backend.get("type") or "")
        location = str(backend.get("path") or "")
        if not backend or not kind or not location:
            warnings.append(f"backend {backend_name!r} is not defined with a type and path")
            continue
        if kind == "local":
            if location == "~" or location.startswith("~/"):
                location = str(home).rstrip("/") + location[1:]
            local = Path(location)
            repo = str(local if local.is_absolute() else path.parent / local)
        else:
            repo = f"{kind}:{location}"
        out.append(ForeignRepository(repo, RepositoryDialect.RESTIC, backend_name))
    return out
