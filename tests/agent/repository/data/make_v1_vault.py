"""Write the tiny vault ``v1-vault/`` that test_index_compat opens: run once with the
agent code of before the compact index (commit a68f60b), e.g.

    git archive a68f60b agent | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/agent python tests/agent/repository/data/make_v1_vault.py

It backs up ``source_files()`` twice (the second time with one file changed and one
added), so the vault holds two snapshots, two index files and shared blobs.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from pathlib import Path

VAULT_KEY = bytes(range(32))
HERE = Path(__file__).resolve().parent


def source_files(generation: int) -> dict[str, bytes]:
    """The files of the source tree at backup ``generation`` (0 or 1)."""
    rng = random.Random(17)
    files = {
        "notes.txt": b"the first backup\n" * 40,
        "docs/report.bin": rng.randbytes(6000),
        "docs/empty": b"",
    }
    if generation:
        files["notes.txt"] += b"changed\n"
        files["docs/new.bin"] = rng.randbytes(3000)
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def main() -> None:
    from comet.agent.backup import BackupOptions, FilesSource, run_backup
    from comet.agent.repository import Repository
    from comet.agent.storage.local import LocalStorage

    out = HERE / "v1-vault"
    shutil.rmtree(out, ignore_errors=True)
    repo = Repository.init(LocalStorage(out), VAULT_KEY)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for generation in (0, 1):
            write_tree(src, source_files(generation))
            run_backup(repo, FilesSource([str(src)]), BackupOptions("item", "device"))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
