"""Each tool's own syntax, taken from its documentation, means the same after import:
borgmatic's ``~`` in exclude_patterns, restic ``--exclude``/``--iexclude`` and
``--files-from`` (also as RESTIC_FILES_FROM, and in resticprofile and autorestic
configs). Table-driven: one row per documented example."""

from __future__ import annotations

from pathlib import Path

import pytest

from comet.agent.importers.autorestic import read_autorestic
from comet.agent.importers.borgmatic import read_borgmatic
from comet.agent.importers.patterns import convert_borg, convert_restic
from comet.agent.importers.restic_env import read_restic_env
from comet.agent.importers.resticprofile import read_resticprofile
from tests.agent.importers.test_patterns import HOME, comet_excludes


# borgmatic reference config: "exclude_patterns: Any paths matching these patterns are
# excluded from backups. Globs and tildes are expanded."
@pytest.mark.parametrize(
    ("pattern", "excluded", "kept"),
    [
        ("~/*/.cache", ["/home/alice/x/.cache", "/home/alice/x/.cache/f"], ["/~/x/.cache"]),
        ("~/.cache", ["/home/alice/.cache/pip"], ["/home/bob/.cache"]),
        ("/etc/ssl", ["/etc/ssl/certs"], ["/etc/sslx"]),
        ("*.pyc", ["/src/a.pyc", "/a/b/c.pyc"], ["/src/a.py"]),
        ("/home/*/.cache", ["/home/u/.cache"], ["/home/u/cache"]),
        ("sh:/home/*/.thumbnails", ["/home/u/.thumbnails"], ["/home/u/v/.thumbnails"]),
        ("re:^/home/[^/]+/\\.local", ["/home/u/.local/share"], ["/home/u/v/.local"]),
        ("pp:/root/.npm", ["/root/.npm/x"], ["/root/.npmrc-other/x"]),
    ],
)
def test_borgmatic_exclude_patterns(pattern: str, excluded: list[str], kept: list[str]) -> None:
    converted = convert_borg(pattern, home=HOME)
    assert converted is not None and not converted.warning, converted
    for path in excluded:
        assert comet_excludes(converted, path), (pattern, path, converted)
    for path in kept:
        assert not comet_excludes(converted, path), (pattern, path, converted)


def test_a_borgmatic_config_with_a_tilde_exclude(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "source_directories:\n    - /home/alice\nrepositories:\n    - path: /backups/repo\n"
        "exclude_patterns:\n    - '~/*/.cache'\n    - '*.pyc'\n"
    )
    setup = read_borgmatic(config, home=HOME)
    (item,) = setup.items
    assert "/home/alice/*/.cache" in item.exclude_globs
    assert not any(g.startswith("/~") for g in item.exclude_globs)


# restic docs, "Excluding Files": patterns use filepath.Match (* stays in one component),
# ** spans directories, a pattern without a leading / matches at any depth, --iexclude
# ignores case, and $HOME / ~ are expanded.
@pytest.mark.parametrize(
    ("pattern", "ignore_case", "excluded", "kept"),
    [
        ("*.c", False, ["/src/a.c", "/x/y/z.c"], ["/src/a.cc", "/src/a.C"]),
        ("/home/*/.cache", False, ["/home/u/.cache/x"], ["/home/u/v/.cache"]),
        ("foo/**/bar", False, ["/foo/bar", "/a/foo/x/y/bar"], ["/foo/barx"]),
        ("$HOME/tmp", False, ["/home/alice/tmp/x"], ["/home/bob/tmp"]),
        ("~/Downloads", False, ["/home/alice/Downloads"], ["/Downloads"]),
        ("*.JPG", True, ["/p/a.jpg", "/p/b.JPG"], ["/p/a.jpeg"]),
        ("/Users/*/Library", True, ["/users/u/library/x"], ["/users/u/v/library"]),
    ],
)
def test_restic_exclude_and_iexclude(
    pattern: str, ignore_case: bool, excluded: list[str], kept: list[str]
) -> None:
    converted = convert_restic(pattern, home=HOME, ignore_case=ignore_case)
    assert converted is not None and not converted.warning, converted
    for path in excluded:
        assert comet_excludes(converted, path), (pattern, path, converted)
    for path in kept:
        assert not comet_excludes(converted, path), (pattern, path, converted)


def files_from_list(tmp_path: Path) -> tuple[Path, list[str]]:
    """The restic docs' --files-from example: comments and blank lines are skipped and
    globs are expanded."""
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    for name in ("a.md", "b.md", "c.txt"):
        (src / "docs" / name).write_text(name)
    listing = tmp_path / "files.txt"
    listing.write_text(f"# source files\n{src}/main\n\n{src}/docs/*.md\n")
    (src / "main").mkdir()
    return listing, [f"{src}/main", f"{src}/docs/a.md", f"{src}/docs/b.md"]


def test_restic_env_files_from(tmp_path: Path) -> None:
    listing, expected = files_from_list(tmp_path)
    env = {"RESTIC_REPOSITORY": "/backups/restic", "RESTIC_FILES_FROM": str(listing)}
    setup = read_restic_env(env, name="x.env", where="x.env", home=HOME, base_dir=tmp_path)
    (item,) = setup.items
    assert sorted(item.includes) == sorted(expected)
    assert not any("RESTIC_BACKUP_PATHS" in w for w in setup.warnings)


def test_resticprofile_files_from_and_excludes(tmp_path: Path) -> None:
    listing, expected = files_from_list(tmp_path)
    config = tmp_path / "profiles.yaml"
    config.write_text(
        "version: '1'\ndefault:\n  repository: local:/backups/rp\n  backup:\n"
        f"    files-from: {listing}\n    exclude:\n      - '*.tmp'\n    iexclude:\n"
        "      - '*.BAK'\n"
    )
    (item,) = read_resticprofile(config, home=HOME)["default"].items
    assert sorted(item.includes) == sorted(expected)
    assert "*.tmp" in item.exclude_globs
    assert any(r.startswith("(?i)") for r in item.exclude_regexes)


def test_autorestic_files_from_option(tmp_path: Path) -> None:
    listing, expected = files_from_list(tmp_path)
    config = tmp_path / ".autorestic.yml"
    config.write_text(
        f"version: 2\nlocations:\n  home:\n    from: {tmp_path}/extra\n    to: local\n"
        "    options:\n"
        f"      backup:\n        files-from: {listing}\n        exclude:\n          - '*.tmp'\n"
        "backends:\n  local:\n    type: local\n    path: /backups/ar\n"
    )
    (tmp_path / "extra").mkdir()
    (item,) = read_autorestic(config, home=HOME)[0]["home"].items
    assert sorted(item.includes) == sorted([f"{tmp_path}/extra", *expected])
    assert "*.tmp" in item.exclude_globs


def test_an_unreadable_files_from_list_is_a_warning_not_silence(tmp_path: Path) -> None:
    env = {"RESTIC_REPOSITORY": "/r", "RESTIC_FILES_FROM": str(tmp_path / "missing.txt")}
    setup = read_restic_env(env, name="x", where="x", home=HOME, base_dir=tmp_path)
    assert setup.items == ()
    assert any("missing.txt" in w for w in setup.warnings)
