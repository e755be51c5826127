"""Corpora: the data every tool backs up, generated into a temp dir, never committed.

``source`` is a copy of the Python standard library and the venv's site-packages (tens
of thousands of files, compiled ``__pycache__`` included, files over 4 MiB left out);
``large`` holds incompressible random files, compressible SQL-dump-like text and a disk
image with zero extents and holes. Everything is written in chunk-sized calls: this VM
is slow to hand out big fresh buffers. Imports nothing from Comet."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import sysconfig
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1024 * 1024
MIB = 1024 * 1024
SOURCE_BYTES = 500 * MIB
RANDOM_BYTES = 512 * MIB
SQL_BYTES = 512 * MIB
IMAGE_BYTES = 512 * MIB
FILES_PER_KIND = 8
IMAGE_BLOCK = 64 * 1024
# The interpreter's own site-packages is not the standard library; the venv's is copied.
SKIPPED_DIRS = frozenset({"site-packages", "dist-packages"})
# Bigger files (Qt and ICU libraries, static libpython) belong to the large corpus.
SOURCE_FILE_MAX = 4 * MIB


@dataclass(frozen=True)
class Corpus:
    """A built corpus: its root and its regular files (paths relative to root, sorted)."""

    name: str
    root: Path
    files: tuple[str, ...]


@dataclass(frozen=True)
class TreeSummary:
    """What a restore must reproduce, cheap enough to compare after every restore."""

    files: int
    symlinks: int
    bytes: int


def source_roots() -> list[tuple[Path, str]]:
    """The standard library (without its own site-packages) and this venv's packages."""
    paths = sysconfig.get_paths()
    return [(Path(paths["stdlib"]), "stdlib"), (Path(paths["purelib"]), "site-packages")]


def _source_entries() -> list[tuple[Path, Path, int]]:
    """Every file and symlink of the source roots as (source, relative target, size),
    compiled ``__pycache__`` files included: they are part of a real installed tree."""
    entries = []
    for src_root, label in source_roots():
        for dirpath, dirnames, filenames in os.walk(src_root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size > SOURCE_FILE_MAX:
                    continue
                if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    entries.append((path, Path(label) / path.relative_to(src_root), st.st_size))
    return entries


def _spread(rel: Path) -> float:
    """A stable pseudo-random number in [0, 1) per path."""
    digest = hashlib.blake2b(str(rel).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def build_source(root: Path, scale: float) -> Corpus:
    """Copy a stable, evenly spread subset of the source files sized about
    ``SOURCE_BYTES * scale`` (all of them if the tree is smaller), so the file count
    shrinks with the byte count and every package keeps some of its files."""
    entries = _source_entries()
    total = sum(size for _src, _rel, size in entries)
    keep = min(1.0, SOURCE_BYTES * scale / max(total, 1))
    for src, rel, _size in entries:
        if _spread(rel) < keep:
            _copy_entry(src, root / rel)
    return _finish("source", root)


def _copy_entry(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copyfile(src, dst)


def build_large(root: Path, scale: float) -> Corpus:
    """Random, SQL-dump and disk-image files totalling about ``1.5 GiB * scale``."""
    (root / "random").mkdir(parents=True)
    (root / "sql").mkdir()
    (root / "image").mkdir()
    random_size = max(1, int(RANDOM_BYTES * scale) // FILES_PER_KIND)
    sql_size = max(1, int(SQL_BYTES * scale) // FILES_PER_KIND)
    for i in range(FILES_PER_KIND):
        write_random(root / "random" / f"random-{i:02d}.bin", random_size, seed=100 + i)
        write_sql_dump(root / "sql" / f"dump-{i:02d}.sql", sql_size, seed=200 + i)
    write_disk_image(root / "image" / "disk.img", max(IMAGE_BLOCK, int(IMAGE_BYTES * scale)))
    return _finish("large", root)


def write_random(path: Path, size: int, *, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("wb") as f:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            f.write(rng.randbytes(n))
            left -= n


_TABLES = ("orders", "customers", "invoices", "shipments")
_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
_CITIES = ("Lisbon", "Oslo", "Quito", "Perth", "Dakar", "Hanoi", "Lima", "Riga")


def _sql_chunk(first_id: int, rows: int, rng: random.Random) -> str:
    table = _TABLES[first_id % len(_TABLES)]
    lines = [f"-- rows {first_id}..{first_id + rows - 1}\n"]
    for row in range(first_id, first_id + rows):
        cents = rng.randrange(100, 10_000_000)
        lines.append(
            f"INSERT INTO {table} (id, customer, city, amount, created_at, note) VALUES "
            f"({row}, '{_NAMES[row % 10]}-{row % 9973}', '{_CITIES[cents % 8]}', "
            f"{cents // 100}.{cents % 100:02d}, '2024-{row % 12 + 1:02d}-{row % 28 + 1:02d} "
            f"{row % 24:02d}:{row % 60:02d}:00', 'status={('paid', 'open', 'void')[row % 3]}');\n"
        )
    return "".join(lines)


def write_sql_dump(path: Path, size: int, *, seed: int) -> None:
    """Generated INSERT statements: text that zstd shrinks several times over."""
    rng = random.Random(seed)
    next_id = seed * 10_000_000
    with path.open("wb") as f:
        f.write(b"BEGIN;\n")
        left = size - 7
        while left > 0:
            data = _sql_chunk(next_id, 2000, rng).encode()[:left]
            next_id += 2000
            f.write(data)
            left -= len(data)


def write_disk_image(path: Path, size: int) -> None:
    """A disk image: extents of random data, text, written zeros and holes."""
    rng = random.Random(7)
    zeros = bytes(IMAGE_BLOCK)
    kinds = ("random", "text", "zeros", "hole")
    with path.open("wb") as f:
        offset = 0
        while offset < size:
            kind = rng.choices(kinds, weights=(2, 1, 3, 4))[0]
            extent = min(rng.randint(1, 32) * IMAGE_BLOCK, size - offset)
            f.seek(offset)
            done = 0
            while done < extent and kind != "hole":
                n = min(IMAGE_BLOCK, extent - done)
                if kind == "random":
                    f.write(rng.randbytes(n))
                elif kind == "text":
                    f.write(_sql_chunk(offset + done, 400, rng).encode().ljust(n, b"\n")[:n])
                else:
                    f.write(zeros[:n])
                done += n
            offset += extent
        f.truncate(size)


MANY_FILES_PER_DIR = 64
MANY_FILES_FANOUT = 16
MANY_FILES_MAX_SIZE = 4096


def build_many_files(root: Path, count: int, name: str) -> Corpus:
    """``count`` small files (0-4 KiB of random bytes each), ``MANY_FILES_PER_DIR`` per
    leaf directory, leaves spread over a tree ``MANY_FILES_FANOUT`` wide and as deep as
    the count needs (1,000,000 files: 15,625 leaves, four levels). Seeded: the same
    count always gives the same tree."""
    rng = random.Random(count)
    leaves = -(-count // MANY_FILES_PER_DIR)
    depth = 1
    while MANY_FILES_FANOUT**depth < leaves:
        depth += 1
    files: list[str] = []
    for leaf in range(leaves):
        digits = []
        n = leaf
        for _ in range(depth):
            n, digit = divmod(n, MANY_FILES_FANOUT)
            digits.append(f"d{digit:x}")
        directory = "/".join(reversed(digits))
        (root / directory).mkdir(parents=True, exist_ok=True)
        first = leaf * MANY_FILES_PER_DIR
        for i in range(first, min(first + MANY_FILES_PER_DIR, count)):
            rel = f"{directory}/f{i}.bin"
            fd = os.open(root / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, rng.randbytes(rng.randrange(MANY_FILES_MAX_SIZE + 1)))
            finally:
                os.close(fd)
            files.append(rel)
    return Corpus(name=name, root=root, files=tuple(sorted(files)))


def _finish(name: str, root: Path) -> Corpus:
    files: list[str] = []
    for dirpath, _dirs, filenames in os.walk(root):
        for filename in filenames:
            path = Path(dirpath) / filename
            if stat.S_ISREG(path.lstat().st_mode):
                files.append(str(path.relative_to(root)))
    return Corpus(name=name, root=root, files=tuple(sorted(files)))


def summarize(root: Path) -> TreeSummary:
    files = symlinks = size = 0
    for dirpath, _dirs, filenames in os.walk(root):
        for filename in filenames:
            st = os.lstat(os.path.join(dirpath, filename))
            if stat.S_ISLNK(st.st_mode):
                symlinks += 1
            elif stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return TreeSummary(files=files, symlinks=symlinks, bytes=size)


def warm_up(corpus: Corpus) -> int:
    """Read every file once so each tool starts from the same warm page cache."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total = 0
    for rel in corpus.files:
        with open(corpus.root / rel, "rb", buffering=0) as f:
            while n := f.readinto(view):
                total += n
    return total


def directory_bytes(root: Path) -> int:
    """Apparent size of every regular file under ``root`` (what storage would bill)."""
    total = 0
    for dirpath, _dirs, filenames in os.walk(root):
        for filename in filenames:
            st = os.lstat(os.path.join(dirpath, filename))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
