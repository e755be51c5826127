"""Reading foreign configuration files: YAML, TOML and shell-style environment files.

Every failure becomes an ImporterError naming the file, so detection can skip it with a
reason instead of crashing.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comet.agent.importers.source import ImporterError

MAX_CONFIG_BYTES = 1 << 20
"""Configuration files are small; anything larger is not one and is not read whole."""


def read_text(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ImporterError(f"{path}: cannot read it: {e.strerror or e}") from e
    if len(data) > MAX_CONFIG_BYTES:
        raise ImporterError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes, not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ImporterError(f"{path}: not UTF-8 text") from e


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (safe loader: no custom tags)."""
    import yaml  # ~1 MiB resident: loaded by the first import plan that reads YAML

    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        # Problem marks carry line numbers; keep the message to one line.
        detail = " ".join(str(e).split())
        raise ImporterError(f"{path}: invalid YAML: {detail}") from e
    return _top_mapping(path, data)


def load_toml_mapping(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as e:
        raise ImporterError(f"{path}: invalid TOML: {e}") from e
    return _top_mapping(path, data)


def _top_mapping(path: Path, data: object) -> dict[str, Any]:
    if data is None:
        raise ImporterError(f"{path}: the file is empty")
    if not isinstance(data, dict):
        raise ImporterError(f"{path}: expected a mapping of settings at the top level")
    return {str(k): v for k, v in data.items()}


def load_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (optionally ``export``-ed, quoted as in a shell, with comments).

    Values are not expanded: ``$VAR`` stays literal, as systemd's EnvironmentFile does."""
    return parse_env_text(read_text(path), where=str(path))


def parse_env_text(text: str, *, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum() or key[0].isdigit():
            raise ImporterError(f"{where}: line {number} is not a KEY=value assignment")
        try:
            words = shlex.split(value, comments=True)
        except ValueError as e:
            raise ImporterError(f"{where}: line {number}: {e}") from e
        out[key] = " ".join(words)
    return out


def as_str_list(value: object) -> list[str]:
    """A setting that may be one string or a list of strings; other values are dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    return []


def as_mapping(value: object) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {}
