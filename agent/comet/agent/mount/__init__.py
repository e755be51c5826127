"""``comet mount``: every snapshot of a vault as a read-only FUSE filesystem, served by
the agent (which holds the keys) with pyfuse3 on libfuse 3.

Trees are read through ``Repository.load_tree``; file data through a bounded blob cache
that fetches lazily and reads ahead, pack by pack, on sequential reads. Must not import
grpc or Qt; pyfuse3 and trio live only in ``filesystem`` and ``session``.
"""

from comet.agent.mount.options import MountError, MountOptions, MountPlan, MountRequest

__all__ = ["MountError", "MountOptions", "MountPlan", "MountRequest"]
