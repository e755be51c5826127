"""One engine operation on a local vault in its own process, for SIGKILL tests:

    python -m tests.e2e.vault_driver backup VAULT SOURCE ITEM
    python -m tests.e2e.vault_driver prune VAULT

It prints ``ready`` once the repository is open, then ``committed <snapshot id>`` or
``pruned``. Lock and grace periods are short (seconds) so a killed holder's lock and its
leftovers are judged quickly, as the production periods would be after minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.maintenance import prune
from comet.agent.repository import Repository
from comet.agent.repository.lock import LockPolicy
from comet.agent.storage.local import LocalStorage

VAULT_KEY = b"k" * 32
POLICY = LockPolicy(stale_after_ns=10**9, refresh_every_ns=2 * 10**8, prune_grace_ns=15 * 10**8)


def open_vault(path: str) -> Repository:
    return Repository.open(LocalStorage(Path(path)), VAULT_KEY, lock_policy=POLICY)


def main(argv: list[str]) -> int:
    command, vault = argv[0], argv[1]
    if command == "init":
        Repository.init(LocalStorage(Path(vault)), VAULT_KEY).close()
        return 0
    repo = open_vault(vault)
    print("ready", flush=True)
    if command == "backup":
        source, item = argv[2], argv[3]
        result = run_backup(repo, FilesSource([source]), BackupOptions(item, "device"))
        print(f"committed {result.snapshot_id.hex()}", flush=True)
    elif command == "prune":
        prune(repo)
        print("pruned", flush=True)
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
