"""Converting borg and restic exclude patterns into Comet's exclude globs and regexes.

Comet's semantics (see ``comet.agent.backup.options.FilesSource``): an entry is excluded
when a glob matches its absolute path or its name (``fnmatch``: ``*`` crosses ``/``), or a
regex is found anywhere in its absolute path; an excluded directory is not descended into.

Foreign styles and their mapping:

* borg ``fm:`` (the default for ``exclude_patterns``): fnmatch on the path, ``*`` crosses
  ``/``; the same as ours once rooted at ``/``, so it stays a glob.
* borg ``sh:`` and every restic pattern: ``*`` stays inside one path component and ``**``
  spans directories. When a glob says exactly the same (a plain path, ``**/NAME``,
  ``DIR/**``) it becomes a glob; otherwise an anchored regex, never a looser glob, so an
  import never excludes more than the old setup did. A restic pattern without a leading
  ``/`` matches at any depth (as if it began with ``**/``).
* borg ``pp:`` / ``pf:`` (path prefix / full path): a literal glob of that path.
* borg ``re:``: kept as a regex; an anchor written for borg's relative paths (``^home/``)
  is re-anchored at ``/``.
* Re-includes (restic ``!pattern``, borg ``+`` pattern lines) cannot be expressed and are
  dropped with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_WILDCARDS = frozenset("*?[\\")
_BORG_STYLES = ("fm", "sh", "re", "pp", "pf")


@dataclass(frozen=True)
class Converted:
    """One foreign pattern's translation: a glob, a regex, or only a warning."""

    glob: str = ""
    regex: str = ""
    warning: str = ""


@dataclass
class Excludes:
    """Collects converted patterns for one item."""

    globs: list[str] = field(default_factory=list)
    regexes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, converted: Converted | None) -> None:
        if converted is None:
            return
        if converted.glob and converted.glob not in self.globs:
            self.globs.append(converted.glob)
        if converted.regex and converted.regex not in self.regexes:
            self.regexes.append(converted.regex)
        if converted.warning:
            self.warnings.append(converted.warning)


def convert_borg(
    pattern: str, *, default_style: str = "fm", home: Path | None = None
) -> Converted | None:
    """A borg exclude pattern (``exclude_patterns`` entry); None for a blank line. With
    ``home``, a leading ``~`` is expanded first, as borgmatic does for
    ``exclude_patterns`` (``os.path.expanduser`` on the whole pattern, so a ``~`` after
    a style prefix such as ``sh:~/x`` stays as written)."""
    text = pattern.strip()
    if not text or text.startswith("#"):
        return None
    if home is not None and (text == "~" or text.startswith("~/")):
        text = str(home).rstrip("/") + text[1:]
    style, body = default_style, text
    if len(text) > 3 and text[2] == ":" and text[:2] in _BORG_STYLES:
        style, body = text[:2], text[3:]
    if style == "fm":
        return Converted(glob=_root_fm(body))
    if style == "sh":
        return _shell_pattern(_rooted(body), original=text, ignore_case=False)
    if style in ("pp", "pf"):
        return Converted(glob=_literal_glob(_rooted(body)))
    if style == "re":
        return _borg_regex(body, original=text)
    return Converted(warning=f"exclude pattern {text!r}: unknown borg pattern style, left out")


def convert_borg_pattern_line(line: str, default_style: str) -> tuple[str, Converted | None]:
    """One line of borg's ``--patterns`` syntax. Returns (kind, converted) where kind is
    ``"root"`` (converted.glob holds the root path), ``"style"`` (converted.glob holds the
    new default style), ``"exclude"`` or ``"skip"``."""
    text = line.strip()
    if not text or text.startswith("#"):
        return "skip", None
    kind, _, rest = text.partition(" ")
    rest = rest.strip()
    if kind == "R":
        return "root", Converted(glob=rest)
    if kind == "P":
        if rest in _BORG_STYLES:
            return "style", Converted(glob=rest)
        return "skip", Converted(warning=f"pattern line {text!r}: unknown style, left out")
    if kind in ("-", "!"):
        return "exclude", convert_borg(rest, default_style=default_style)
    if kind == "+":
        return "skip", Converted(
            warning=f"pattern line {text!r}: Comet cannot re-include paths inside an "
            "excluded folder; left out"
        )
    return "skip", Converted(warning=f"pattern line {text!r}: not understood, left out")


def convert_restic(pattern: str, *, home: Path, ignore_case: bool = False) -> Converted | None:
    """A restic ``--exclude`` (or ``--iexclude``) pattern; None for a blank or comment."""
    text = pattern.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("!"):
        return Converted(
            warning=f"exclude pattern {text!r}: Comet cannot re-include paths; left out"
        )
    body = _expand_home(text, home)
    if "$" in body:
        return Converted(
            warning=f"exclude pattern {text!r}: uses an environment variable; left out"
        )
    body = body.rstrip("/") or "/"
    rooted = body if body.startswith("/") else "/**/" + body
    return _shell_pattern(rooted, original=text, ignore_case=ignore_case)


def convert_all(converted: Iterable[Converted | None]) -> Excludes:
    out = Excludes()
    for c in converted:
        out.add(c)
    return out


def _expand_home(text: str, home: Path) -> str:
    h = str(home).rstrip("/")
    if text == "~" or text.startswith("~/"):
        text = h + text[1:]
    return text.replace("${HOME}", h).replace("$HOME", h)


def _rooted(body: str) -> str:
    body = body.strip()
    if len(body) > 1:
        body = body.rstrip("/")
    return body if body.startswith("/") else "/" + body


def _root_fm(body: str) -> str:
    body = body.strip()
    if len(body) > 1:
        body = body.rstrip("/")
    # A leading * already spans the leading slash of our absolute paths.
    return body if body.startswith(("/", "*")) else "/" + body


def _literal_glob(path: str) -> str:
    """A glob that matches exactly ``path`` (fnmatch has no escape character)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def _has_wildcard(text: str) -> bool:
    return any(c in _WILDCARDS for c in text)


def _shell_pattern(rooted: str, *, original: str, ignore_case: bool) -> Converted:
    """A rooted pattern where ``*`` stops at ``/`` and ``**`` spans directories."""
    regex = _shell_regex(rooted)
    if regex is None:
        return Converted(warning=f"exclude pattern {original!r}: malformed, left out")
    if not ignore_case:
        if not _has_wildcard(rooted):
            return Converted(glob=rooted)
        if rooted.startswith("/**/"):
            name = rooted[4:]
            if "/" not in name and _name_glob_is_exact(name):
                return Converted(glob=name)
        if rooted.endswith("/**") and not _has_wildcard(rooted[:-3]):
            return Converted(glob=rooted[:-3] + "/*")
    return Converted(regex=("(?i)" + regex) if ignore_case else regex)


def _name_glob_is_exact(name: str) -> bool:
    """Whether glob ``name`` (no ``/``) matches our absolute paths exactly when the foreign
    pattern would match a path component: our globs also try the whole path, where a
    leading wildcard could span several components."""
    if "\\" in name:
        return False
    if name[0] not in "*?[":
        return True  # a literal first character can never match the leading "/"
    if "?" in name or "[" in name:
        return False
    return sum(1 for part in name.split("*") if part) <= 1


def _shell_regex(rooted: str) -> str | None:
    out = ["^"]
    i, n = 0, len(rooted)
    while i < n:
        if rooted.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif rooted.startswith("**", i):
            out.append(".*")
            i += 2
        elif rooted[i] == "*":
            out.append("[^/]*")
            i += 1
        elif rooted[i] == "?":
            out.append("[^/]")
            i += 1
        elif rooted[i] == "[":
            end = rooted.find("]", i + 2)
            if end < 0:
                return None
            inner = rooted[i + 1 : end]
            negate = inner[:1] in ("!", "^")
            inner = inner[1:] if negate else inner
            inner = inner.replace("\\", "\\\\")
            out.append(f"[^/{inner}]" if negate else f"[{inner}]")
            i = end + 1
        elif rooted[i] == "\\" and i + 1 < n:
            out.append(re.escape(rooted[i + 1]))
            i += 2
        else:
            out.append(re.escape(rooted[i]))
            i += 1
    out.append("(?:/|$)")
    regex = "".join(out)
    try:
        re.compile(regex)
    except re.error:
        return None
    return regex


def _borg_regex(body: str, *, original: str) -> Converted:
    regex = body
    # Borg matches paths without their leading slash; ours have it.
    if regex.startswith("^") and not regex.startswith(("^/", "^\\/")):
        regex = "^/" + regex[1:]
    try:
        re.compile(regex)
    except re.error as e:
        return Converted(warning=f"exclude pattern {original!r}: invalid regex ({e}), left out")
    return Converted(regex=regex)
