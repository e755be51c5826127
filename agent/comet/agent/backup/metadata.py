"""Turning a path's ``lstat`` (plus owner names and xattrs) into a tree ``Node``."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from functools import lru_cache

from comet.agent.backup.read_small import read_xattrs
from comet.agent.repository.tree import Node, NodeType


@lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=1024)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def node_type(st: os.stat_result) -> NodeType | None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return NodeType.FILE
    if stat.S_ISDIR(mode):
        return NodeType.DIR
    if stat.S_ISLNK(mode):
        return NodeType.SYMLINK
    if stat.S_ISFIFO(mode):
        return NodeType.FIFO
    if stat.S_ISCHR(mode):
        return NodeType.CHARDEV
    if stat.S_ISBLK(mode):
        return NodeType.BLOCKDEV
    if stat.S_ISSOCK(mode):
        return NodeType.SOCKET
    return None


def node_from_stat(
    name: str,
    st: os.stat_result,
    kind: NodeType,
    *,
    size: int | None = None,
    content: tuple[bytes, ...] = (),
    subtree: bytes | None = None,
    target: str | None = None,
    link: tuple[str, ...] | None = None,
    xattrs: tuple[tuple[str, bytes], ...] = (),
) -> Node:
    """A node from a path's metadata plus the parts given (``size`` defaults to the
    stat's for files, 0 otherwise). Built in one go: a frozen node copied with
    ``dataclasses.replace`` for each part cost more than the file's own system calls
    in a tree of small files."""
    rdev_major = rdev_minor = 0
    if kind in (NodeType.CHARDEV, NodeType.BLOCKDEV):
        rdev_major, rdev_minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if size is None:
        size = st.st_size if kind == NodeType.FILE else 0
    uid, gid = st.st_uid, st.st_gid
    return Node(
        name,
        kind,
        stat.S_IMODE(st.st_mode),
        uid,
        gid,
        user_name(uid),
        group_name(gid),
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_dev,
        st.st_nlink,
        size,
        content,
        subtree,
        target,
        link,
        xattrs,
        rdev_major,
        rdev_minor,
    )


__all__ = ["group_name", "node_from_stat", "node_type", "read_xattrs", "user_name"]
