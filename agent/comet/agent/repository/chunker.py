"""Keyed content-defined chunking (FastCDC 2020 through pyfastcdc's native extension).

The pure-Python fallback of pyfastcdc runs at ~15 MB/s, so it is refused: a missing
extension raises ChunkerUnavailableError instead.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from typing import Any

from comet.agent.errors import ChunkerUnavailableError
from comet.agent.repository.format import CHUNK_AVG, CHUNK_MAX, CHUNK_MIN

ReadInto = Callable[[memoryview], int]
"""Fill the given buffer from the start; return the byte count, 0 at end of input."""


def _native_fastcdc() -> Any:
    try:
        from pyfastcdc.cy import FastCDC
    except ImportError as e:
        raise ChunkerUnavailableError(
            "the native pyfastcdc extension is not installed; reinstall the agent "
            "(the pure-Python chunker is too slow to use)"
        ) from e
    return FastCDC


class Chunker:
    """Cuts byte streams into chunks. One instance per thread: it owns a reused buffer
    of a quarter more than the maximum chunk size, an anonymous mapping whose pages
    become resident only when a stream first fills them (a zeroed ``bytearray`` made it
    all resident up front, even for a backup that reads no file or only small ones)."""

    def __init__(
        self,
        seed: int,
        *,
        min_size: int = CHUNK_MIN,
        avg_size: int = CHUNK_AVG,
        max_size: int = CHUNK_MAX,
    ) -> None:
        fastcdc = _native_fastcdc()
        self._cdc = fastcdc(
            avg_size, min_size=min_size, max_size=max_size, normalized_chunking=1, seed=seed
        )
        self._buf = mmap.mmap(-1, max_size + max_size // 4)

    def chunks(self, read_into: ReadInto) -> Iterator[memoryview]:
        """Yield the chunks of the stream read through ``read_into``.

        Each yielded view points into the reused buffer and is valid only until the next
        chunk is requested; copy it to keep it.
        """
        buf = self._buf
        view = memoryview(buf)
        fill = 0
        eof = False
        while True:
            while not eof and fill < len(buf):
                n = read_into(view[fill:])
                if n == 0:
                    eof = True
                fill += n
            start = 0
            # Every chunk that ends before the data does is final: FastCDC cuts at the
            # first point past the minimum that its hash marks, or at the maximum, and
            # reads nothing beyond the cut. Only the last one, cut where the data stops,
            # waits for more (or the end of input). It is at most the maximum, so what
            # is carried over (on average half a chunk) leaves room to read more.
            for c in self._cdc.cut_buf(view[:fill]):
                end = c.offset + c.length
                if not eof and end >= fill:
                    break
                start = end
                yield view[c.offset : end]
            if eof:
                return
            rest = fill - start
            buf.move(0, start, rest)  # overlapping ranges are fine for mmap.move
            fill = rest
