"""``comet mount`` and ``comet unmount``: the CLI side of the agent's mounts.

``comet mount`` stays in the foreground while the agent serves the mount; Ctrl-C (or
SIGTERM) cancels the call, which makes the agent unmount, and ``comet unmount`` from
another shell ends it the same way."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from comet.agent.mount.options import MountError
from comet.agent.output import print_json
from comet.v1 import agent_api_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli import AgentClient

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``268435456``, ``256M``, ``256MiB``, ``1G`` → bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (examples: 512M, 2G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_mount(client: AgentClient, args: argparse.Namespace) -> None:
    mountpoint = os.path.abspath(args.mountpoint)
    request = agent_api_pb2.MountRequest(
        vault_id=args.vault,
        mountpoint=mountpoint,
        item_id=args.item or "",
        snapshot_id=args.snapshot or "",
        all_devices=args.all_devices,
        cache_bytes=args.cache_size or 0,
        detach=args.detach,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    events = client.api.Mount(request)
    try:
        for event in events:
            if event.mounted:
                if args.json:
                    print_json({"mountpoint": event.mountpoint, "mounted": True})
                else:
                    how = "" if args.detach else "; Ctrl-C or 'comet unmount' to unmount"
                    print(f"mounted {event.mountpoint}{how}", flush=True)
            else:
                print(f"unmounted {event.mountpoint}", file=sys.stderr)
    except KeyboardInterrupt:
        events.cancel()
        deadline = time.monotonic() + 15
        while os.path.ismount(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.ismount(mountpoint):
            raise MountError(
                f"{mountpoint} is still mounted; run 'comet unmount {mountpoint}'"
            ) from None
        print(f"unmounted {mountpoint}", file=sys.stderr)


def cmd_unmount(client: AgentClient, args: argparse.Namespace) -> None:
    mountpoint = os.path.abspath(args.mountpoint)
    client.api.Unmount(agent_api_pb2.UnmountRequest(mountpoint=mountpoint), timeout=60)


def add_mount_commands(sub: Any) -> None:
    mount = sub.add_parser(
        "mount",
        help="browse every snapshot as a read-only filesystem (served by the agent)",
        description="Mounts a vault's snapshots at MOUNTPOINT as by-item/<item>/<time>/… "
        "(and by-device/<device>/<item>/<time>/… with --all-devices). Stays in the "
        "foreground until Ctrl-C or 'comet unmount MOUNTPOINT'.",
    )
    mount.add_argument("mountpoint", metavar="MOUNTPOINT")
    mount.add_argument("--vault", required=True)
    mount.add_argument("--item", help="only this Protected Item (name or id)")
    mount.add_argument("--snapshot", help="only this snapshot (id or id prefix)")
    mount.add_argument("--all-devices", action="store_true", help="every device's snapshots")
    mount.add_argument(
        "--cache-size", type=parse_size, help="memory for file data read (default 256M)"
    )
    mount.add_argument(
        "--detach", action="store_true", help="return once mounted; unmount with 'comet unmount'"
    )
    mount.add_argument("--json", action="store_true")
    mount.set_defaults(func=cmd_mount)
    unmount = sub.add_parser("unmount", help="unmount what 'comet mount' mounted")
    unmount.add_argument("mountpoint", metavar="MOUNTPOINT")
    unmount.set_defaults(func=cmd_unmount)
