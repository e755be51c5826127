"""``MountRegistry``: the mounts this agent serves, by mount point. Async edge for the
local API: starting and stopping a mount happen in worker threads."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from comet.agent.mount.options import MountError, MountPlan

if TYPE_CHECKING:
    from comet.agent.mount.served_mount import ServedMount

log = logging.getLogger("comet.agent.mount")


class MountRegistry:
    def __init__(self) -> None:
        self._mounts: dict[str, ServedMount] = {}

    async def start(self, plan: MountPlan) -> ServedMount:
        """Mount ``plan``; raises MountError (the repository is closed then)."""
        try:
            from comet.agent.mount.served_mount import ServedMount
        except ImportError as e:  # pyfuse3 or libfuse3 missing on this device
            plan.repo.close()
            raise MountError(
                "this agent cannot serve mounts: it needs libfuse 3 and pyfuse3 "
                f"(Debian fuse3, pip install 'comet-backup[mount]'): {e}"
            ) from None
        mountpoint = os.path.abspath(plan.options.mountpoint)
        if mountpoint in self._mounts:
            plan.repo.close()
            raise MountError(f"{mountpoint} is already mounted by this agent")
        served = await asyncio.to_thread(
            ServedMount, plan.repo, plan.options, plan.item_names, on_end=self._ended
        )
        self._mounts[served.mountpoint] = served
        return served

    def _ended(self, served: ServedMount) -> None:
        # Called from the mount's thread; a dict pop is atomic under the GIL.
        if self._mounts.get(served.mountpoint) is served:
            self._mounts.pop(served.mountpoint, None)

    async def stop(self, mountpoint: str) -> None:
        """Unmount; raises MountError if this agent serves nothing there."""
        served = self._mounts.get(os.path.abspath(mountpoint))
        if served is None:
            raise MountError(
                f"this agent serves no mount at {mountpoint} "
                "(a mount left by a stopped agent is cleared with 'fusermount3 -u')"
            )
        await asyncio.to_thread(served.stop)

    async def stop_all(self) -> None:
        for served in list(self._mounts.values()):
            log.info("unmounting %s (agent stopping)", served.mountpoint)
            await asyncio.to_thread(served.stop)
