"""Process-wide allocator settings for the agent, applied once at start-up.

glibc's malloc raises its mmap threshold each time a large block is freed, up to
32 MiB, and then serves later multi-MiB buffers (packs read for upload, blob copies)
from per-thread heaps that keep freed memory instead of giving it back: a backup's
peak RSS grew by tens of MiB that held nothing. A fixed threshold of twice the largest
chunk keeps blob-sized buffers (a chunk, its compressed and sealed copies) on the heap,
fast to reuse, and returns every bigger one (a pack read back for upload) to the system
when freed; two arenas stop each worker thread from growing a heap of its own. Fixing
the threshold also fixes the trim threshold at glibc's 128 KiB, and it is left there: a
16 MiB trim threshold raised a first backup's peak by 5-9 MB (35 k files, 0.5 GB) and
made it no faster. Nothing changes on other C libraries.

Between jobs the agent gives the free pages of every heap back to the system
(``malloc_trim``): the mmap threshold returns big buffers as they are freed, but the
small and blob-sized ones a job freed stay resident in the heaps and per-thread arenas
until the next job, which on a laptop may be a day away."""

from __future__ import annotations

import ctypes
import logging
import os

from comet.agent.repository.format import CHUNK_MAX

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 2 * CHUNK_MAX + 1
ARENA_MAX = 2

log = logging.getLogger(__name__)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the C library the interpreter runs on
    except OSError:
        return None


def tune_malloc() -> bool:
    """Apply the settings above; False where the C library is not glibc."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, ARENA_MAX))
    if not ok:
        log.debug("mallopt refused the allocator settings")
    return ok


def release_free_memory() -> bool:
    """Return the heaps' free pages to the system (after start-up, and when the last
    running job ends); False where the C library has no ``malloc_trim``."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True


def peak_own_rss(pid: int) -> int:
    """A process's peak resident set (VmHWM) less its file-backed pages (RssFile: the
    interpreter and libraries, which the agent maps too), in bytes; 0 once it is gone.
    For the agent's helper processes, whose file-backed pages stay the same after their
    start: what they add to the agent's own memory at their peak."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmHWM", "RssFile"):
                    fields[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        return 0
    return max(0, fields.get("VmHWM", 0) - fields.get("RssFile", 0))


def helper_environment() -> dict[str, str]:
    """The environment of the agent's helper processes (the small-file reader of
    backups, the file writer of restores): the agent's, with glibc's mmap threshold
    fixed at 64 KiB. Their messages of 128 KiB and more are then mapped and given back
    when freed; with glibc's own threshold, which rises as big blocks are freed, they
    stayed in the heap: the reader's own peak was 8.9 MiB over 100,000 files, 3.8 MiB
    with this, no slower. Other C libraries ignore the variable."""
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(64 << 10)}
