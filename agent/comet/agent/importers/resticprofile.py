"""Reading resticprofile configurations (TOML or YAML; format version 1 with profiles at the
top level, or version 2 with a ``profiles:`` table).

Each profile with backup sources is its own setup (and its own ImportSource): profiles
usually differ in repository, retention and schedule, which one import plan holds only
once. ``inherit`` is resolved first, nested sections merged key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comet.agent.importers.config_file import (
    as_mapping,
    as_str_list,
    load_toml_mapping,
    load_yaml_mapping,
)
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

_NOT_PROFILES = frozenset({"version", "global", "groups", "includes", "mixins", "templates"})


def read_resticprofile(path: Path, *, home: Path) -> dict[str, ForeignSetup]:
    """Setups by profile name, in file order. Raises ImporterError if the file cannot be
    read or has no profile with backup sources."""
    data = load_toml_mapping(path) if path.suffix == ".toml" else load_yaml_mapping(path)
    raw = as_mapping(data.get("profiles")) if "profiles" in data else data
    profiles = {
        name: as_mapping(body)
        for name, body in raw.items()
        if name not in _NOT_PROFILES and isinstance(body, Mapping)
    }
    setups: dict[str, ForeignSetup] = {}
    for name in profiles:
        profile = _resolved(name, profiles, path)
        backup = as_mapping(profile.get("backup"))
        if any(as_str_list(backup.get(key)) for key in _SOURCE_KEYS):
            setups[name] = _setup(name, profile, path, home)
    if not setups:
        raise ImporterError(f"{path}: no profile has backup sources")
    return setups


def _resolved(name: str, profiles: Mapping[str, Mapping[str, Any]], path: Path) -> dict[str, Any]:
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current in chain:
            raise ImporterError(f"{path}: profile {name!r} inherits from itself")
        if current not in profiles:
            raise ImporterError(f"{path}: profile {chain[-1]!r} inherits unknown {current!r}")
        chain.append(current)
        parent = profiles[current].get("inherit")
        current = str(parent) if parent else None
    merged: dict[str, Any] = {}
    for ancestor in reversed(chain):
        merged = _merge(merged, profiles[ancestor])
    return merged


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


_SOURCE_KEYS = ("source", "files-from", "files-from-verbatim", "files-from-raw")


def _setup(name: str, profile: Mapping[str, Any], path: Path, home: Path) -> ForeignSetup:
    warnings: list[str] = []
    backup = as_mapping(profile.get("backup"))
    base = profile.get("base-dir")
    base_dir = Path(base) if isinstance(base, str) and base.startswith("/") else None
    listed, listed_warnings = restic_files_from(
        files=as_str_list(backup.get("files-from")),
        verbatim=as_str_list(backup.get("files-from-verbatim")),
        raw=as_str_list(backup.get("files-from-raw")),
        home=home,
        base_dir=base_dir or path.parent,
    )
    warnings += listed_warnings
    includes, include_warnings = resolve_includes(
        [*as_str_list(backup.get("source")), *listed], home=home, base_dir=base_dir
    )
    excludes = restic_excludes(
        patterns=as_str_list(backup.get("exclude")),
        ipatterns=as_str_list(backup.get("iexclude")),
        exclude_files=as_str_list(backup.get("exclude-file")),
        iexclude_files=as_str_list(backup.get("iexclude-file")),
        home=home,
        base_dir=base_dir or path.parent,
    )
    warnings += include_warnings + excludes.warnings
    for flag in UNSUPPORTED_BACKUP_FLAGS:
        if backup.get(flag):
            warnings.append(f"restic option {flag} has no Comet equivalent; left out")
    pre = as_str_list(profile.get("run-before")) + as_str_list(backup.get("run-before"))
    post = as_str_list(backup.get("run-after")) + as_str_list(profile.get("run-after"))
    item = files_item(
        f"resticprofile {name}", includes, excludes, pre_commands=pre, post_commands=post
    )
    retention = as_mapping(profile.get("retention")) or as_mapping(profile.get("forget"))
    return ForeignSetup(
        name=f"profile {name!r}",
        items=(item,) if item else (),
        repositories=tuple(_repository(profile, warnings)),
        keep=keep_rules_from(retention, separator="-"),
        schedules=tuple(
            ForeignSchedule(ScheduleSyntax.ON_CALENDAR, s)
            for s in as_str_list(backup.get("schedule"))
        ),
        schedule_note="the profile has no schedule",
        warnings=tuple(warnings),
    )


def _repository(profile: Mapping[str, Any], warnings: list[str]) -> list[ForeignRepository]:
    repo = profile.get("repository")
    if not isinstance(repo, str):
        env = {k.upper(): v for k, v in as_mapping(profile.get("env")).items()}
        repo = env.get("RESTIC_REPOSITORY")
    if isinstance(repo, str) and repo.strip():
        return [ForeignRepository(repo.strip(), RepositoryDialect.RESTIC)]
    if profile.get("repository-file"):
        warnings.append("the repository is named in a repository-file; create a vault yourself")
    else:
        warnings.append("the profile names no repository")
    return []
