"""Foreign exclude patterns keep their meaning under Comet's matching rules."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from pathlib import Path

import pytest

from comet.agent.importers.patterns import (
    Converted,
    convert_borg,
    convert_borg_pattern_line,
    convert_restic,
)

HOME = Path("/home/alice")


def comet_excludes(converted: Converted, path: str) -> bool:
    """Comet's walker: an entry is skipped when it or an ancestor matches (glob against the
    absolute path or the name, or regex search in the path)."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        current = "/" + "/".join(parts[:depth])
        name = posixpath.basename(current)
        if converted.glob and (
            fnmatch.fnmatchcase(current, converted.glob)
            or fnmatch.fnmatchcase(name, converted.glob)
        ):
            return True
        if converted.regex and re.search(converted.regex, current):
            return True
    return False


@pytest.mark.parametrize(
    ("pattern", "kind", "excluded", "kept"),
    [
        ("*.pyc", "glob", ["/a/b/c.pyc", "/x.pyc"], ["/a/b/c.py"]),
        ("/home/*/.cache", "glob", ["/home/u/.cache/x", "/home/a/b/.cache"], ["/home/.cachex"]),
        ("home/*/.cache", "glob", ["/home/u/.cache"], ["/srv/home/u/.cache"]),
        ("sh:/home/*/junk", "regex", ["/home/u/junk/f"], ["/home/u/v/junk"]),
        ("sh:**/*.tmp", "glob", ["/a/b/c.tmp", "/c.tmp"], ["/a/b/c.tmpx"]),
        ("sh:/var/cache/**", "glob", ["/var/cache/apt/x"], ["/var/cache", "/var/cachex"]),
        ("sh:/srv/**/logs", "regex", ["/srv/logs", "/srv/a/b/logs/x"], ["/srv/a/logsx"]),
        ("pp:/home/alice/tmp", "glob", ["/home/alice/tmp/x"], ["/home/alice/tmpx"]),
        ("pf:/etc/weird[1]*", "glob", ["/etc/weird[1]*"], ["/etc/weird1x"]),
        ("re:^home/[^/]+/\\.thumbnails", "regex", ["/home/u/.thumbnails/a"], ["/srv/home/u/.th"]),
        ("re:\\.bak$", "regex", ["/a/b.bak"], ["/a/b.bak2"]),
    ],
)
def test_borg_patterns(pattern: str, kind: str, excluded: list[str], kept: list[str]) -> None:
    converted = convert_borg(pattern)
    assert converted is not None and converted.warning == ""
    assert bool(converted.glob) == (kind == "glob")
    for path in excluded:
        assert comet_excludes(converted, path), path
    for path in kept:
        assert not comet_excludes(converted, path), path


@pytest.mark.parametrize(
    ("pattern", "kind", "excluded", "kept"),
    [
        ("*.tmp", "glob", ["/a/b.tmp", "/a/b.tmp/c"], ["/a/b.tmpx"]),
        (".cache", "glob", ["/home/u/.cache/x"], ["/home/u/.cachex"]),
        ("/home/alice/scratch", "glob", ["/home/alice/scratch/x"], ["/srv/home/alice/scratch"]),
        ("$HOME/Downloads", "glob", ["/home/alice/Downloads/x"], ["/home/bob/Downloads"]),
        ("~/Downloads/*.iso", "regex", ["/home/alice/Downloads/a.iso"], ["/home/alice/x.iso"]),
        ("node_modules/cache", "regex", ["/a/node_modules/cache/x"], ["/a/node_modules/c"]),
        ("*a*b", "regex", ["/x/zab"], ["/xa/yb"]),  # a glob would match across folders
        ("?foo", "regex", ["/a/xfoo"], ["/foo"]),
        ("[!a]x", "regex", ["/q/bx"], ["/q/ax"]),
    ],
)
def test_restic_patterns(pattern: str, kind: str, excluded: list[str], kept: list[str]) -> None:
    converted = convert_restic(pattern, home=HOME)
    assert converted is not None and converted.warning == ""
    assert bool(converted.glob) == (kind == "glob")
    for path in excluded:
        assert comet_excludes(converted, path), path
    for path in kept:
        assert not comet_excludes(converted, path), path


def test_restic_ignore_case_is_a_regex() -> None:
    converted = convert_restic("*.ISO", home=HOME, ignore_case=True)

    assert converted is not None and converted.regex.startswith("(?i)")
    assert comet_excludes(converted, "/a/disk.iso")
    assert not comet_excludes(converted, "/a/disk.isox")


@pytest.mark.parametrize(
    ("converted", "reason"),
    [
        (convert_restic("!keep.tmp", home=HOME), "re-include"),
        (convert_restic("$CACHE_DIR/x", home=HOME), "environment variable"),
        (convert_restic("foo[bar", home=HOME), "malformed"),
        (convert_borg("re:(unclosed"), "invalid regex"),
    ],
)
def test_inexpressible_patterns_become_warnings(converted: Converted | None, reason: str) -> None:
    assert converted is not None
    assert converted.glob == converted.regex == ""
    assert reason in converted.warning


def test_blank_and_comment_lines_are_ignored() -> None:
    assert convert_borg("  ") is None
    assert convert_restic("# comment", home=HOME) is None


def test_borg_pattern_lines() -> None:
    assert convert_borg_pattern_line("R /home", "sh") == ("root", Converted(glob="/home"))
    assert convert_borg_pattern_line("P fm", "sh") == ("style", Converted(glob="fm"))
    kind, converted = convert_borg_pattern_line("- /home/*/junk", "sh")
    assert kind == "exclude" and converted is not None and converted.regex
    kind, converted = convert_borg_pattern_line("- /home/*/junk", "fm")
    assert converted == Converted(glob="/home/*/junk")
    kind, converted = convert_borg_pattern_line("+ /home/alice/keep", "sh")
    assert kind == "skip" and converted is not None and "re-include" in converted.warning
