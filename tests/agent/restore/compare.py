"""Compare a tree extracted by a real archive tool with the backed-up source."""

from __future__ import annotations

import filecmp
import os
import stat
from pathlib import Path


def walk(root: Path) -> dict[str, os.stat_result]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def compare_trees(
    src: Path,
    out: Path,
    *,
    mtime_precision_ns: int = 1,
    skip: frozenset[str] = frozenset(),
    hard_links: bool = True,
    xattrs: bool = False,
    symlink_mtimes: bool = True,
) -> None:
    """Every entry of ``src`` but ``skip`` is in ``out`` with the same type, mode, mtime
    (to ``mtime_precision_ns``), content and link target; nothing extra is in ``out``."""
    before = {k: v for k, v in walk(src).items() if k not in skip}
    after = walk(out)
    assert sorted(before) == sorted(after)
    for rel, st in before.items():
        new = after[rel]
        assert stat.S_IFMT(st.st_mode) == stat.S_IFMT(new.st_mode), rel
        if not stat.S_ISLNK(st.st_mode):
            assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(new.st_mode), rel
        p = mtime_precision_ns
        if symlink_mtimes or not stat.S_ISLNK(st.st_mode):
            assert st.st_mtime_ns // p == new.st_mtime_ns // p, rel
        if stat.S_ISREG(st.st_mode):
            assert st.st_size == new.st_size, rel
            assert filecmp.cmp(src / rel, out / rel, shallow=False), rel
        if stat.S_ISLNK(st.st_mode):
            assert os.readlink(src / rel) == os.readlink(out / rel), rel
        if xattrs and not stat.S_ISLNK(st.st_mode):
            for name in os.listxattr(src / rel):
                assert os.getxattr(src / rel, name) == os.getxattr(out / rel, name), rel
    if hard_links and "hard1" in before:
        assert after["hard1"].st_ino == after["a/hard2"].st_ino
