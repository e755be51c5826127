"""The device's own policy for commands that arrive from the server: what an admin's
remote command may do on this device, whatever the server says.

Read from a root-owned TOML file (default ``/etc/comet-agent/agent.toml``)::

    [remote]
    allow_programs = false            # run programs because an admin asked
    restore_dirs = ["/srv/restores"]  # where admin restores may write, besides
                                      # the original paths

A file that is not owned by root, or that its group or others may write, is refused:
whoever could edit it could grant themselves root through the agent. No file means the
defaults: no remote programs, restores only into ``<state dir>/restores``."""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from comet.agent.errors import AgentError

log = logging.getLogger(__name__)


class DevicePolicyError(AgentError):
    """The policy file cannot be trusted or read; the agent does not start."""

    code = "device_policy.invalid"


class RefusedByDevicePolicyError(AgentError):
    """A remote command asked for something this device's policy does not allow."""

    code = "device_policy.refused"

    def __init__(self, message: str) -> None:
        super().__init__(f"refused by this device's local policy: {message}")


@dataclass(frozen=True)
class DevicePolicy:
    allow_remote_programs: bool
    restore_dirs: tuple[Path, ...]
    source: str = "defaults"

    def check_program(self, what: str) -> None:
        if not self.allow_remote_programs:
            raise RefusedByDevicePolicyError(
                f"{what} would run a program, and remote program execution is off on this "
                f"device ({self.source}: [remote] allow_programs = false)"
            )

    def check_restore_path(self, path: str, what: str) -> None:
        """``path`` (a directory or an archive file) must lie inside an allowed
        restore directory, symlinks resolved."""
        if not os.path.isabs(path):
            raise RefusedByDevicePolicyError(f"{what} must be an absolute path, not {path!r}")
        resolved = Path(os.path.realpath(path))
        for allowed in self.restore_dirs:
            root = Path(os.path.realpath(allowed))
            if resolved == root or root in resolved.parents:
                return
        allowed_text = ", ".join(str(d) for d in self.restore_dirs) or "none"
        raise RefusedByDevicePolicyError(
            f"{what} {path} is outside the restore directories this device allows "
            f"({allowed_text}; set [remote] restore_dirs in {self.source})"
        )


def defaults(state_dir: Path) -> DevicePolicy:
    return DevicePolicy(allow_remote_programs=False, restore_dirs=(state_dir / "restores",))


def _check_trusted(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise DevicePolicyError(f"the device policy {path} is not a regular file")
    if st.st_uid != 0:
        raise DevicePolicyError(
            f"the device policy {path} is not owned by root (uid {st.st_uid}); "
            f"fix it with: chown root:root {path}"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DevicePolicyError(
            f"the device policy {path} may be written by its group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); fix it with: chmod 644 {path}"
        )


def load(path: Path, *, state_dir: Path) -> DevicePolicy:
    """The policy in ``path``, or the defaults if there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return defaults(state_dir)
    except OSError as e:
        raise DevicePolicyError(f"cannot open the device policy {path}: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        _check_trusted(path, os.fstat(f.fileno()))
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise DevicePolicyError(f"the device policy {path} is not valid TOML: {e}") from e
    remote = data.get("remote", {})
    if not isinstance(remote, dict):
        raise DevicePolicyError(f"{path}: [remote] must be a table")
    unknown = set(remote) - {"allow_programs", "restore_dirs"}
    if unknown:
        raise DevicePolicyError(f"{path}: unknown [remote] setting {sorted(unknown)[0]!r}")
    allow = remote.get("allow_programs", False)
    if not isinstance(allow, bool):
        raise DevicePolicyError(f"{path}: [remote] allow_programs must be true or false")
    dirs = remote.get("restore_dirs", [str(state_dir / "restores")])
    if not isinstance(dirs, list) or not all(isinstance(d, str) and d for d in dirs):
        raise DevicePolicyError(f"{path}: [remote] restore_dirs must be a list of paths")
    relative = [d for d in dirs if not os.path.isabs(d)]
    if relative:
        raise DevicePolicyError(f"{path}: restore directory {relative[0]!r} is not absolute")
    policy = DevicePolicy(
        allow_remote_programs=allow,
        restore_dirs=tuple(Path(d) for d in dirs),
        source=str(path),
    )
    log.info(
        "device policy %s: remote programs %s, restore directories %s",
        path,
        "allowed" if allow else "refused",
        ", ".join(dirs) or "none",
    )
    return policy
