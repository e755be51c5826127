"""Reading restic setups described by environment variables: ``*.env`` files (as used by
systemd units and wrapper scripts) or the agent's own environment.

Understood: ``RESTIC_REPOSITORY``; ``RESTIC_BACKUP_PATHS`` / ``BACKUP_PATHS`` (separated by
whitespace, or by ``:`` when every part is absolute); ``RESTIC_FILES_FROM`` (a
``--files-from`` list of paths); ``RESTIC_EXCLUDE_FILE``;
``RESTIC_KEEP_LAST``/``_DAILY``/... / ``_WITHIN``, ``RESTIC_RETENTION_DAYS``/``_WEEKS``/...,
and ``--keep-*`` flags in ``RESTIC_FORGET_ARGS``. Passwords and cloud keys are never read.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from comet.agent.importers.files_item import files_item, resolve_includes
from comet.agent.importers.foreign import ForeignRepository, ForeignSetup, RepositoryDialect
from comet.agent.importers.restic_options import restic_excludes, restic_files_from
from comet.agent.importers.retention import keep_rules_from
from comet.agent.importers.source import ImporterError

RELEVANT_PREFIXES = ("RESTIC_KEEP_", "RESTIC_RETENTION_")
RELEVANT_KEYS = frozenset(
    {
        "RESTIC_REPOSITORY",
        "RESTIC_REPOSITORY_FILE",
        "RESTIC_PASSWORD_FILE",
        "RESTIC_BACKUP_PATHS",
        "BACKUP_PATHS",
        "RESTIC_EXCLUDE_FILE",
        "RESTIC_FILES_FROM",
        "RESTIC_FORGET_ARGS",
    }
)
"""The variables an import looks at; nothing else (no passwords, no cloud keys) is kept."""

_RETENTION_UNITS = {
    "LAST": "last",
    "HOURS": "hourly",
    "HOURLY": "hourly",
    "DAYS": "daily",
    "DAILY": "daily",
    "WEEKS": "weekly",
    "WEEKLY": "weekly",
    "MONTHS": "monthly",
    "MONTHLY": "monthly",
    "YEARS": "yearly",
    "YEARLY": "yearly",
    "WITHIN": "within",
}
SCHEDULE_NOTE = "restic has no schedule of its own (it usually ran from cron or a systemd timer)"


def relevant(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in RELEVANT_KEYS or k.startswith(RELEVANT_PREFIXES)}


def read_restic_env(
    env: Mapping[str, str], *, name: str, where: str, home: Path, base_dir: Path | None
) -> ForeignSetup:
    """The setup described by ``env`` (``name`` names its item, ``where`` is shown in
    errors). Raises ImporterError without RESTIC_REPOSITORY."""
    repo = env.get("RESTIC_REPOSITORY", "").strip()
    if not repo:
        if env.get("RESTIC_REPOSITORY_FILE"):
            raise ImporterError(f"{where}: the repository is in RESTIC_REPOSITORY_FILE; not read")
        raise ImporterError(f"{where}: no RESTIC_REPOSITORY")
    warnings: list[str] = []
    raw_paths = env.get("RESTIC_BACKUP_PATHS") or env.get("BACKUP_PATHS") or ""
    files_from = env.get("RESTIC_FILES_FROM", "").strip()
    listed, listed_warnings = restic_files_from(
        files=[files_from] if files_from else [], home=home, base_dir=base_dir
    )
    warnings += listed_warnings
    includes, include_warnings = resolve_includes(
        [*_split_paths(raw_paths), *listed], home=home, base_dir=base_dir
    )
    exclude_file = env.get("RESTIC_EXCLUDE_FILE", "").strip()
    excludes = restic_excludes(
        exclude_files=[exclude_file] if exclude_file else [], home=home, base_dir=base_dir
    )
    warnings += include_warnings + excludes.warnings
    if not raw_paths and not files_from:
        warnings.append(
            "no RESTIC_BACKUP_PATHS, BACKUP_PATHS or RESTIC_FILES_FROM: add the folders to "
            "back up yourself"
        )
    if env.get("RESTIC_PASSWORD_FILE"):
        warnings.append(
            "the restic password file is not used: the new vault gets its own key, "
            "protected by your Comet password"
        )
    item = files_item(f"restic {name}", includes, excludes)
    return ForeignSetup(
        name=name,
        items=(item,) if item else (),
        repositories=(ForeignRepository(repo, RepositoryDialect.RESTIC),),
        keep=keep_rules_from(_keep_settings(env, warnings), separator="-"),
        schedule_note=SCHEDULE_NOTE,
        warnings=tuple(warnings),
    )


def _split_paths(raw: str) -> list[str]:
    words = raw.split()
    if len(words) == 1 and ":" in raw and all(p.startswith(("/", "~")) for p in raw.split(":")):
        return raw.split(":")
    return words


def _keep_settings(env: Mapping[str, str], warnings: list[str]) -> dict[str, object]:
    """``keep-*`` settings gathered from the variables, later sources winning."""
    keep: dict[str, object] = {}
    for key, value in env.items():
        for prefix in RELEVANT_PREFIXES:
            if key.startswith(prefix) and value.strip():
                unit = _RETENTION_UNITS.get(key[len(prefix) :])
                keep[f"keep-{unit or key[len(prefix) :].lower()}"] = value.strip()
    args = env.get("RESTIC_FORGET_ARGS", "")
    try:
        words = shlex.split(args)
    except ValueError:
        warnings.append("RESTIC_FORGET_ARGS could not be parsed; its rules were left out")
        words = []
    for i, word in enumerate(words):
        flag, eq, value = word.partition("=")
        if not flag.startswith("--keep-"):
            continue
        if not eq:
            value = words[i + 1] if i + 1 < len(words) else ""
        keep[flag[2:]] = value
    return keep
