"""Building the Files and Folders item of an import: include paths and excludes."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path

from comet.agent.importers.patterns import Excludes
from comet.agent.items import ItemSpec, ItemType

_GLOB_CHARS = frozenset("*?[")


def resolve_includes(
    raw: Iterable[str], *, home: Path, base_dir: Path | None
) -> tuple[list[str], list[str]]:
    """Absolute include paths for ``raw`` and warnings.

    ``~`` is the user's home; a relative path is taken from ``base_dir`` or, without one,
    left out (the old tool resolved it from a working directory this import cannot know).
    A wildcard path is expanded now, because Comet includes are plain paths; the warning
    says that folders created later will not be picked up."""
    out: list[str] = []
    warnings: list[str] = []
    for entry in raw:
        text = entry.strip()
        if not text:
            continue
        if text == "~" or text.startswith("~/"):
            text = str(home).rstrip("/") + text[1:]
        if not text.startswith("/"):
            if base_dir is None:
                warnings.append(f"source {entry!r} is a relative path; left out")
                continue
            text = str(base_dir / text)
        paths = [text]
        if any(c in _GLOB_CHARS for c in text):
            paths = sorted(glob.glob(text))
            if paths:
                warnings.append(
                    f"source {entry!r} was expanded to the {len(paths)} path(s) that exist "
                    "now; later matches are not included"
                )
            else:
                warnings.append(f"source {entry!r} matches nothing now; left out")
        for p in paths:
            normal = p.rstrip("/") or "/"
            if normal not in out:
                out.append(normal)
    return out, warnings


def files_item(
    name: str,
    includes: Sequence[str],
    excludes: Excludes,
    *,
    pre_commands: Sequence[str] = (),
    post_commands: Sequence[str] = (),
) -> ItemSpec | None:
    """The Files and Folders item, or None when there is nothing to include."""
    if not includes:
        return None
    return ItemSpec(
        item_id="",
        name=name,
        type=ItemType.FILES,
        includes=tuple(includes),
        exclude_globs=tuple(excludes.globs),
        exclude_regexes=tuple(excludes.regexes),
        pre_commands=tuple(pre_commands),
        post_commands=tuple(post_commands),
    )
