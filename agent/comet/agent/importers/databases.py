"""Borgmatic database hooks as Comet Program Output items.

Each database becomes one item whose command writes the dump to stdout, stored under a
save-as name: PostgreSQL ``pg_dump --format=custom NAME`` (``pg_dumpall`` for ``all``),
MySQL ``mysqldump NAME``, MariaDB ``mariadb-dump NAME``, SQLite ``sqlite3 PATH .dump``.
Passwords are never imported: the dump tools read them from ``~/.pgpass`` / ``~/.my.cnf``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from comet.agent.items import ItemSpec, ItemType

_KINDS = {
    "postgresql_databases": "PostgreSQL",
    "mysql_databases": "MySQL",
    "mariadb_databases": "MariaDB",
    "sqlite_databases": "SQLite",
}
_UNSUPPORTED = ("mongodb_databases",)


def database_items(hooks: Mapping[str, Any]) -> tuple[list[ItemSpec], list[str]]:
    """Program Output items for every database hook in ``hooks``, and warnings."""
    items: list[ItemSpec] = []
    warnings: list[str] = []
    for key, kind in _KINDS.items():
        entries = hooks.get(key) or []
        if not isinstance(entries, list):
            warnings.append(f"{key} is not a list of databases; left out")
            continue
        for entry in entries:
            if not isinstance(entry, Mapping) or not entry.get("name"):
                warnings.append(f"a {kind} database entry has no name; left out")
                continue
            item = _item(kind, {str(k): v for k, v in entry.items()}, warnings)
            if item is not None:
                items.append(item)
    for key in _UNSUPPORTED:
        if hooks.get(key):
            warnings.append(f"{key} hooks are not imported; add a Program Output item yourself")
    return items, warnings


def _item(kind: str, entry: dict[str, Any], warnings: list[str]) -> ItemSpec | None:
    name = str(entry["name"])
    if entry.get("password"):
        warnings.append(
            f"{kind} database {name!r}: the password was not imported; put it in "
            + ("~/.pgpass" if kind == "PostgreSQL" else "~/.my.cnf")
        )
    options = entry.get("options")
    extra = shlex.split(options) if isinstance(options, str) else []
    if kind == "PostgreSQL":
        argv, save_as = _postgresql(name, entry, extra)
    elif kind == "SQLite":
        path = str(entry.get("path") or "")
        if not path:
            warnings.append(f"SQLite database {name!r} has no path; left out")
            return None
        argv, save_as = ["sqlite3", path, ".dump"], f"sqlite-{_file_part(name)}.sql"
    else:
        argv, save_as = _mysql(kind, name, entry, extra)
    return ItemSpec(
        item_id="",
        name=f"{kind} database {name}" if name != "all" else f"{kind}, all databases",
        type=ItemType.PROGRAM,
        program_command=shlex.join(argv),
        program_save_as=save_as,
    )


def _connection(entry: Mapping[str, Any], user_flag: str) -> list[str]:
    argv: list[str] = []
    if entry.get("hostname"):
        argv += ["--host", str(entry["hostname"])]
    if entry.get("port"):
        argv += ["--port", str(entry["port"])]
    if entry.get("username"):
        argv += [user_flag, str(entry["username"])]
    return argv


def _tool(entry: Mapping[str, Any], key: str, default: str) -> list[str]:
    """The dump command, which borgmatic lets a person replace (``docker exec db pg_dump``)."""
    custom = entry.get(key)
    return shlex.split(custom) if isinstance(custom, str) and custom.strip() else [default]


def _postgresql(name: str, entry: Mapping[str, Any], extra: list[str]) -> tuple[list[str], str]:
    conn = [*_connection(entry, "--username"), *extra]
    if name == "all":
        tool = _tool(entry, "pg_dumpall_command", "pg_dumpall")
        return [*tool, *conn], "postgresql-all.sql"
    tool = _tool(entry, "pg_dump_command", "pg_dump")
    if entry.get("format") == "plain":
        return [*tool, "--format=plain", *conn, name], f"postgresql-{_file_part(name)}.sql"
    return [*tool, "--format=custom", *conn, name], f"postgresql-{_file_part(name)}.dump"


def _mysql(
    kind: str, name: str, entry: Mapping[str, Any], extra: list[str]
) -> tuple[list[str], str]:
    default_tool = "mysqldump" if kind == "MySQL" else "mariadb-dump"
    tool = _tool(entry, f"{kind.lower()}_dump_command", default_tool)
    conn = [*_connection(entry, "--user"), *extra]
    target = ["--all-databases"] if name == "all" else [name]
    return [*tool, *conn, *target], f"{kind.lower()}-{_file_part(name)}.sql"


def _file_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "database"
