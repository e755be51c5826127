"""A "Comet Server" Storage Vault end to end: the agent asks the server for a bucket,
backs up into it through StorageService and restores byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.processes import AgentProcess, ServerProcess

pytestmark = pytest.mark.timeout(180)


def test_comet_vault_backs_up_and_restores(
    alice: AgentProcess, server: ServerProcess, short_tmp: Path
) -> None:
    source, dest = short_tmp / "src", short_tmp / "dest"
    (source / "sub").mkdir(parents=True)
    (source / "payload.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 11))
    (source / "sub" / "notes.txt").write_text("hello from the comet vault\n" * 1000)
    (source / "empty").write_bytes(b"")

    alice.comet("vault", "add", "srv", "--type", "comet")
    vaults = alice.comet("vault", "list", "--json").json()
    [vault] = [v for v in vaults if v["name"] == "srv"]
    assert vault["type_code"] == 1003 and vault["location"]  # the bucket id
    bucket_dir = server.data_dir / "buckets" / vault["location"]
    assert bucket_dir.is_dir()

    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    job = alice.comet("backup", "docs", "--vault", "srv", "--wait", "--json").json()
    assert job["status"] == "success", job
    stored = sum(p.stat().st_size for p in bucket_dir.rglob("*") if p.is_file())
    assert stored > 3 * 1024 * 1024

    restored = alice.comet(
        "restore", job["snapshot_id"], "--vault", "srv", "--to", str(dest), "--wait", "--json"
    ).json()
    assert restored["status"] == "success", restored
    out = dest / str(source).lstrip("/")
    for rel in ("payload.bin", "sub/notes.txt", "empty"):
        assert (out / rel).read_bytes() == (source / rel).read_bytes(), rel
