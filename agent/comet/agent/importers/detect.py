"""``detect``: find the foreign backup configurations of one Linux user."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from comet.agent.importers.autorestic import read_autorestic
from comet.agent.importers.borgmatic import read_borgmatic
from comet.agent.importers.config_file import load_env_file
from comet.agent.importers.foreign import ForeignSetup
from comet.agent.importers.planner import SHAPE_ERRORS
from comet.agent.importers.restic_env import read_restic_env, relevant
from comet.agent.importers.resticprofile import read_resticprofile
from comet.agent.importers.source import (
    ENVIRONMENT_LABEL,
    DetectResult,
    ImporterError,
    ImportSource,
    Product,
    source_id,
)

_Reader = Callable[[Path], dict[str, ForeignSetup]]


def detect(*, home: Path, etc: Path = Path("/etc"), env: Mapping[str, str]) -> DetectResult:
    """Every importable setup found under ``home`` and ``etc`` and in ``env``.

    Looks at borgmatic (``~/.config/borgmatic/config.yaml``, ``~/.config/borgmatic.d/*``,
    the same under ``/etc``), resticprofile (``profiles.toml``/``.yaml`` in
    ``~/.config/resticprofile`` and ``/etc/resticprofile``), autorestic
    (``~/.autorestic.yml``, ``~/.config/autorestic/.autorestic.yml``) and restic
    environment files (``~/.config/restic/*.env``, ``/etc/restic/*.env``,
    ``/etc/default/restic``, and ``env`` itself when it sets RESTIC_REPOSITORY).

    A missing file is not mentioned; a file that exists but cannot be read or understood
    is skipped with a warning. Never raises for the files' contents."""
    result = DetectResult()
    seen: set[str] = set()

    def scan(product: Product, paths: Iterable[Path], reader: _Reader) -> None:
        for path in paths:
            key = f"{product.value}:{path}"
            if key in seen or not _is_candidate(path, result.warnings):
                continue
            seen.add(key)
            try:
                setups = reader(path)
            except ImporterError as e:
                result.warnings.append(f"skipped: {e}")
                continue
            except SHAPE_ERRORS as e:
                result.warnings.append(f"skipped: {path}: a setting has an unexpected form ({e})")
                continue
            for section, setup in setups.items():
                result.sources.append(_source(product, path, section, setup, home))

    def borgmatic(path: Path) -> dict[str, ForeignSetup]:
        return {"": read_borgmatic(path, home=home)}

    def resticprofile(path: Path) -> dict[str, ForeignSetup]:
        return read_resticprofile(path, home=home)

    def autorestic(path: Path) -> dict[str, ForeignSetup]:
        setups, skipped = read_autorestic(path, home=home)
        result.warnings.extend(f"skipped: {s}" for s in skipped)
        return setups

    def restic_env(path: Path) -> dict[str, ForeignSetup]:
        env_file = load_env_file(path)
        return {
            "": read_restic_env(
                env_file, name=path.name, where=str(path), home=home, base_dir=path.parent
            )
        }

    config = home / ".config"
    scan(
        Product.BORGMATIC,
        [
            config / "borgmatic" / "config.yaml",
            *_listing(config / "borgmatic.d", ("*.yaml", "*.yml")),
            etc / "borgmatic" / "config.yaml",
            *_listing(etc / "borgmatic.d", ("*.yaml", "*.yml")),
        ],
        borgmatic,
    )
    scan(
        Product.RESTICPROFILE,
        [
            *(config / "resticprofile" / f"profiles.{ext}" for ext in ("toml", "yaml", "yml")),
            *(etc / "resticprofile" / f"profiles.{ext}" for ext in ("toml", "yaml", "yml")),
        ],
        resticprofile,
    )
    scan(
        Product.AUTORESTIC,
        [
            home / ".autorestic.yml",
            home / ".autorestic.yaml",
            config / "autorestic" / ".autorestic.yml",
            config / "autorestic" / ".autorestic.yaml",
        ],
        autorestic,
    )
    scan(
        Product.RESTIC_ENV,
        [
            *_listing(config / "restic", ("*.env",)),
            *_listing(etc / "restic", ("*.env",)),
            etc / "default" / "restic",
        ],
        restic_env,
    )
    _scan_environment(env, home, result)
    return result


def _scan_environment(env: Mapping[str, str], home: Path, result: DetectResult) -> None:
    kept = relevant(env)
    if not kept.get("RESTIC_REPOSITORY"):
        return
    try:
        setup = read_restic_env(
            kept, name=ENVIRONMENT_LABEL, where=ENVIRONMENT_LABEL, home=home, base_dir=None
        )
    except ImporterError as e:
        result.warnings.append(f"skipped: {e}")
        return
    source = _source(Product.RESTIC_ENV, None, "", setup, home)
    result.sources.append(
        ImportSource(
            source_id=source.source_id,
            product=source.product,
            path=None,
            description=source.description,
            home=home,
            environment=tuple(sorted(kept.items())),
        )
    )


def _source(
    product: Product, path: Path | None, section: str, setup: ForeignSetup, home: Path
) -> ImportSource:
    where = str(path) if path is not None else "environment variables"
    return ImportSource(
        source_id=source_id(product, path, section),
        product=product,
        path=path,
        description=setup.describe(product.value, where),
        section=section,
        home=home,
    )


def _listing(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    try:
        return sorted({p for pattern in patterns for p in folder.glob(pattern)})
    except OSError:
        return []


def _is_candidate(path: Path, warnings: list[str]) -> bool:
    """Whether ``path`` should be read: it exists and is a regular file."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        warnings.append(f"skipped: {path}: cannot read it: {e.strerror or e}")
        return False
    if not stat.S_ISREG(mode):
        warnings.append(f"skipped: {path}: not a regular file")
        return False
    return True
