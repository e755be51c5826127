"""``FileChange``: the deterministic 1 % change made between the second and third backup,
identical for every tool, and its exact undo (contents, size and mtime) so the next
tool starts from the same corpus. Imports nothing from Comet."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import Corpus

MAX_REGION = 1024 * 1024
APPENDED = b"\n# changed by the Comet benchmark\n"


@dataclass(frozen=True)
class _Edit:
    path: Path
    offset: int
    original: bytes
    size: int
    atime_ns: int
    mtime_ns: int


def chosen_files(corpus: Corpus) -> list[str]:
    """1 % of the files (at least one): the middle file of each of ``n / 100`` equal
    slices of the sorted file list, so the picks spread over the whole tree."""
    files = corpus.files
    count = max(1, round(len(files) / 100))
    return [files[(2 * k + 1) * len(files) // (2 * count)] for k in range(count)]


def _seed(rel: str) -> int:
    return int.from_bytes(hashlib.blake2b(rel.encode(), digest_size=8).digest(), "little")


class FileChange:
    """Overwrites a region in the middle of each chosen file and appends a line.
    ``apply`` then ``revert``; reverting restores bytes, size and timestamps."""

    def __init__(self, corpus: Corpus) -> None:
        self._corpus = corpus
        self._edits: list[_Edit] = []

    @property
    def files(self) -> list[str]:
        return chosen_files(self._corpus)

    def apply(self) -> None:
        for rel in self.files:
            path = self._corpus.root / rel
            st = path.stat()
            offset = st.st_size // 2
            length = min(MAX_REGION, max(16, st.st_size // 100), st.st_size - offset)
            with path.open("r+b") as f:
                f.seek(offset)
                original = f.read(length)
                self._edits.append(
                    _Edit(path, offset, original, st.st_size, st.st_atime_ns, st.st_mtime_ns)
                )
                f.seek(offset)
                f.write(random.Random(_seed(rel)).randbytes(len(original)))
                f.seek(0, os.SEEK_END)
                f.write(APPENDED)

    def revert(self) -> None:
        while self._edits:
            edit = self._edits.pop()
            with edit.path.open("r+b") as f:
                f.seek(edit.offset)
                f.write(edit.original)
                f.truncate(edit.size)
            os.utime(edit.path, ns=(edit.atime_ns, edit.mtime_ns))

    def digests(self) -> dict[str, str]:
        """blake2b of each chosen file as it is now: a restore must match these."""
        return {rel: file_digest(self._corpus.root / rel) for rel in self.files}


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()
