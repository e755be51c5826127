"""``MountSession``: one FUSE mount served from a thread of this process.

libfuse and pyfuse3 keep one session per process, so a process serves at most one
mount at a time (``MountError`` otherwise). The thread runs trio with pyfuse3's main
loop; ``stop`` ends the loop from any thread and unmounts. When the mount goes away by
other means (``fusermount3 -u``, ``umount``) the loop ends by itself and ``wait``
returns. If the process is killed the kernel keeps a dead mount (reads fail with
ENOTCONN) which ``fusermount3 -u MOUNTPOINT`` removes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from collections.abc import Callable

import pyfuse3
import trio

from comet.agent.mount.options import MountError

log = logging.getLogger("comet.agent.mount")

_ONE_PER_PROCESS = threading.Lock()
READ_AHEAD_KB = 4096
MAX_TASKS = 99  # pyfuse3's default: requests that wait do not hold up the others


def fuse_options(*, allow_other: bool) -> set[str]:
    """Read-only, no devices or setuid, and the kernel checks permissions against the
    stored owner and mode. ``allow_other`` (so other users can read what they could
    read originally) needs root or ``user_allow_other`` in /etc/fuse.conf."""
    options = {"ro", "nodev", "nosuid", "default_permissions", "fsname=comet", "subtype=comet"}
    if allow_other and (os.geteuid() == 0 or _fuse_conf_allows_other()):
        options.add("allow_other")
    return options


def _fuse_conf_allows_other() -> bool:
    try:
        with open("/etc/fuse.conf") as f:
            return any(line.strip() == "user_allow_other" for line in f)
    except OSError:
        return False


def raise_read_ahead(mountpoint: str, kb: int = READ_AHEAD_KB) -> bool:
    """Let the kernel read ahead ``kb`` on sequential reads of this mount (its default,
    128 KiB, also caps each read request at 128 KiB: eight times the requests of 1 MiB
    ones). Needs root (the knob is in sysfs); returns whether it was set."""
    try:
        dev = os.stat(mountpoint).st_dev
        with open(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb", "w") as f:
            f.write(str(kb))
    except OSError as e:
        log.debug("mount %s: read-ahead left as it is: %s", mountpoint, e)
        return False
    return True


class MountSession:
    def __init__(
        self,
        operations: pyfuse3.Operations,
        mountpoint: str,
        *,
        allow_other: bool = True,
        serial: bool = False,
        on_end: Callable[[], None] = lambda: None,
    ) -> None:
        """``serial``: one task takes every request in turn, for operations that rarely
        wait (a local vault: they read on the loop). pyfuse3 otherwise keeps a second
        task waiting for the next request, and handing the FUSE device from one task to
        the other costs about as much again as answering a ``find``'s request; with one
        task, a request that waits holds up the others."""
        self.mountpoint = os.path.abspath(mountpoint)
        self._operations = operations
        self._options = fuse_options(allow_other=allow_other)
        self._on_end = on_end
        self._max_tasks = 1 if serial else MAX_TASKS
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Mount and start serving; returns once the mount is visible. Raises MountError."""
        try:
            is_dir = stat.S_ISDIR(os.stat(self.mountpoint).st_mode)
        except FileNotFoundError:
            is_dir = False
        except OSError as e:
            if e.errno == errno.ENOTCONN:
                raise self._dead() from None
            raise MountError(f"cannot use {self.mountpoint}: {e.strerror}") from None
        if not is_dir:
            raise MountError(f"{self.mountpoint} is not a directory: create it first")
        if os.path.ismount(self.mountpoint):
            try:  # the kernel may answer stat from its cache: a listing asks the server
                os.listdir(self.mountpoint)
            except OSError as e:
                if e.errno == errno.ENOTCONN:
                    raise self._dead() from None
            raise MountError(f"{self.mountpoint} is already a mount point")
        if os.listdir(self.mountpoint):
            raise MountError(f"{self.mountpoint} is not empty: mount on an empty directory")
        if not _ONE_PER_PROCESS.acquire(blocking=False):
            raise MountError(
                "this agent already serves a mount: unmount it first ('comet unmount')"
            )
        self._thread = threading.Thread(target=self._run, name="comet-mount", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise MountError(f"mounting {self.mountpoint} did not finish in {timeout:.0f} s")
        if self._error is not None:
            raise MountError(f"cannot mount {self.mountpoint}: {self._error}") from self._error
        raise_read_ahead(self.mountpoint)

    def _dead(self) -> MountError:
        return MountError(
            f"{self.mountpoint} holds a dead mount (of an agent that stopped): "
            f"clear it with 'fusermount3 -u {self.mountpoint}'"
        )

    def _run(self) -> None:
        initialised = False
        try:
            pyfuse3.init(self._operations, self.mountpoint, self._options)
            initialised = True
            trio.run(self._main)
        except BaseException as e:
            self._error = e
            if initialised:
                log.warning("mount %s: the FUSE loop failed: %s", self.mountpoint, e)
        finally:
            if initialised:
                try:
                    pyfuse3.close(unmount=True)
                except Exception as e:  # unmounted by someone else meanwhile
                    log.info("mount %s: close: %s", self.mountpoint, e)
            _ONE_PER_PROCESS.release()
            self._ready.set()
            self._ended.set()
            log.info("unmounted %s", self.mountpoint)
            self._on_end()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._ready.set()
        log.info("mounted %s", self.mountpoint)
        await pyfuse3.main(max_tasks=self._max_tasks)

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the mount to end; True if it did."""
        return self._ended.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """End the loop and unmount (lazily, so a shell whose cwd is inside the mount
        does not keep it)."""
        token = self._token
        if token is not None and not self._ended.is_set():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(pyfuse3.terminate, trio_token=token)
        self._ended.wait(timeout)
