"""The CLI toolkit end to end, on one backed-up vault: diff, dump, stats, ls -R, find by
path, tags, retention --dry-run, profile edits, vault attach, names in every filter
(comet and comet-admin). Real server, real agent, real CLIs."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from comet.agent.repository import Repository
from comet.agent.storage.local import LocalStorage
from tests.fixtures.processes import BIN, AdminCli, AgentProcess

# About 50 CLI calls on one server + agent; a loaded machine needs the headroom.
pytestmark = pytest.mark.timeout(300)


def dump_bytes(alice: AgentProcess, *args: str) -> bytes:
    result = subprocess.run(
        [str(BIN / "comet"), "--socket", str(alice.socket), "dump", *args],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_toolkit_on_one_vault(admin: AdminCli, alice: AgentProcess, short_tmp: Path) -> None:
    src, vault = short_tmp / "src", short_tmp / "vault"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("alpha")
    (src / "docs" / "gone.txt").write_text("soon gone")
    (src / "docs" / "deep" / "big.bin").write_bytes(os.urandom(300_000))
    (src / "same").mkdir()
    (src / "same" / "keep.txt").write_text("unchanged")
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(vault))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(src))
    first = alice.comet("backup", "docs", "--vault", "v", "--wait", "--json").json()
    (src / "docs" / "a.txt").write_text("alpha, longer now")
    (src / "docs" / "gone.txt").unlink()
    (src / "docs" / "new.txt").write_text("new")
    os.chmod(src / "same" / "keep.txt", 0o600)
    second = alice.comet(
        "backup", "docs", "--vault", "v", "--tag", "weekly", "--tag", "manual", "--wait", "--json"
    ).json()

    # Tags are stored and filter listings; 'latest' and prefixes name snapshots.
    snaps = alice.comet("snapshots", "--vault", "v", "--json").json()
    assert [s["tags"] for s in snaps] == [[], ["manual", "weekly"]]
    tagged = alice.comet("snapshots", "--vault", "v", "--tag", "weekly", "--json").json()
    assert [s["snapshot_id"] for s in tagged] == [second["snapshot_id"]]
    bad_tag = alice.comet("backup", "docs", "--vault", "v", "--tag", "a,b", check=False)
    assert bad_tag.returncode != 0 and "not a tag" in bad_tag.stderr

    # diff: by prefix and latest, with change kinds and sizes.
    diff = alice.comet("diff", first["snapshot_id"][:10], "latest", "--vault", "v", "--json").json()
    changes = {c["path"].removeprefix(str(src)): c for c in diff["changes"]}
    assert changes["/docs/a.txt"]["change"] == "modified"
    assert (changes["/docs/a.txt"]["old_size"], changes["/docs/a.txt"]["new_size"]) == (5, 17)
    assert changes["/docs/gone.txt"]["change"] == "removed"
    assert changes["/docs/new.txt"]["change"] == "added"
    assert changes["/same/keep.txt"]["change"] == "metadata"
    assert "/docs/deep/big.bin" not in changes
    assert (diff["added"], diff["removed"], diff["modified"]) == (1, 1, 1)
    # Folders whose entries changed have a new mtime: metadata-only changes too.
    touched = [c["path"] for c in diff["changes"] if c["change"] == "metadata"]
    assert str(src / "docs") in touched and diff["metadata"] == len(touched)
    text = alice.comet("diff", "latest~1", "latest", "--vault", "v", "--item", "docs").stdout
    assert "M    " + str(src / "docs" / "a.txt") in text and "-    " in text

    # dump: a file's bytes; a folder as a tar the real tar reads.
    assert dump_bytes(alice, "latest", str(src / "docs" / "a.txt"), "--vault", "v") == (
        b"alpha, longer now"
    )
    big = dump_bytes(
        alice, first["snapshot_id"], str(src / "docs" / "deep" / "big.bin"), "--vault", "v"
    )
    assert big == (src / "docs" / "deep" / "big.bin").read_bytes()
    tar_bytes = dump_bytes(alice, "latest", str(src / "docs"), "--vault", "v")
    listing = subprocess.run(
        ["tar", "-t"], input=tar_bytes, capture_output=True, check=True
    ).stdout.decode()
    assert str(src / "docs" / "new.txt").lstrip("/") in listing.splitlines()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert "same/keep.txt" not in " ".join(tar.getnames())
    missing = alice.comet("dump", "latest", str(src / "nope"), "--vault", "v", check=False)
    assert missing.returncode != 0 and "not in the snapshot" in missing.stderr
    # Piping into a reader that stops early is not an error.
    piped = subprocess.run(
        f"{BIN / 'comet'} --socket {alice.socket} dump latest /"
        f" --vault v | head -c 10 > /dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.stdout.strip() == "0" and "Traceback" not in piped.stderr

    # stats: restore size, stored size, deduplication.
    stats = alice.comet("stats", "--vault", "v", "--json").json()
    assert stats["snapshots"] == 2
    assert stats["restore_bytes"] == first["bytes"] + second["bytes"]
    assert stats["dedup_ratio"] > 1.8  # the big file is stored once
    assert stats["groups"][0]["item_name"] == "docs"
    one = alice.comet("stats", "--vault", "v", "latest", "--json").json()
    assert one["snapshot_ids"] == [second["snapshot_id"]] and one["snapshots"] == 1

    # ls: 'latest' is accepted; -R walks everything below the path.
    top = alice.comet("ls", "--vault", "v", "latest", str(src), "--json").json()
    assert {e["path"] for e in top} == {str(src / "docs"), str(src / "same")}
    tree = alice.comet("ls", "--vault", "v", "latest", str(src), "-R", "--json").json()
    assert str(src / "docs" / "deep" / "big.bin") in {e["path"] for e in tree}
    assert len(tree) == 7
    table = alice.comet("ls", "--vault", "v", "latest", str(src), "-R").stdout.splitlines()
    assert table[0].split() == ["TYPE", "MODE", "SIZE", "MTIME", "PATH"]
    assert sorted(line.split()[-1] for line in table[1:]) == sorted(e["path"] for e in tree)

    # find: a whole-path glob (not only base names), and size ranges.
    found = alice.comet("find", "--vault", "v", "docs/*.txt", "--tag", "weekly", "--json").json()
    assert sorted(Path(e["path"]).name for e in found) == ["a.txt", "new.txt"]
    sized = alice.comet(
        "find", "--vault", "v", "*", "--min-size", "100K", "--snapshot", "latest", "--json"
    ).json()
    assert [Path(e["path"]).name for e in sized] == ["big.bin"]

    # retention --dry-run: what would go and which rule keeps the rest; nothing changes.
    alice.comet("vault", "edit", "v", "--keep-last", "1")
    plan = alice.comet("retention", "--vault", "v", "--dry-run", "--json").json()
    assert [s["snapshot_id"] for s in plan["forget"]] == [first["snapshot_id"]]
    assert plan["keep"][0]["reasons"] == ["keep-last 1"]
    tagged_plan = alice.comet(
        "retention", "--vault", "v", "--dry-run", "--tag", "weekly", "--json"
    ).json()
    assert tagged_plan["forget"] == [] and len(tagged_plan["keep"]) == 1
    assert len(alice.comet("snapshots", "--vault", "v", "--json").json()) == 2

    # Names wherever ids: history by item and vault name.
    history = alice.comet("history", "--item", "docs", "--vault", "v", "--json").json()
    assert {j["job_id"] for j in history} >= {first["job_id"], second["job_id"]}

    # Profile edits: schedules with names, edit and delete; items; vault rename.
    sid = alice.comet(
        "schedule", "add", "--item", "docs", "--vault", "v", "--daily", "03:00", "--json"
    ).json()["schedule_id"]
    alice.comet("schedule", "edit", sid[:8], "--weekly", "sun", "04:30", "--no-enable")
    (row,) = alice.comet("schedule", "list", "--json").json()
    assert (row["item_name"], row["vault_name"], row["when"], row["enabled"]) == (
        "docs",
        "v",
        "weekly sun 04:30",
        False,
    )
    alice.comet("item", "edit", "docs", "--name", "papers", "--add-exclude", "*.tmp")
    (item,) = alice.comet("item", "list", "--json").json()
    assert (item["name"], item["excludes"]) == ("papers", ["*.tmp"])
    alice.comet("vault", "edit", "v", "--name", "vault-one")
    alice.comet("schedule", "delete", sid)
    assert alice.comet("schedule", "list", "--json").json() == []

    # vault add --attach: the same repository under a second name opens with the
    # account's key; a repository of another account is refused with a sentence.
    attached = alice.comet(
        "vault", "add", "again", "--type", "local", "--path", str(vault), "--attach", "--json"
    ).json()["vault_id"]
    again = alice.comet("snapshots", "--vault", "again", "--json").json()
    assert len(again) == 2
    alice.comet("vault", "delete", "vault-one", "--yes")
    assert [v["vault_id"] for v in alice.comet("vault", "list", "--json").json()] == [attached]
    foreign = short_tmp / "foreign"
    Repository.init(LocalStorage(foreign), os.urandom(32)).close()
    refused = alice.comet(
        "vault", "add", "x", "--type", "local", "--path", str(foreign), "--attach", check=False
    )
    assert refused.returncode != 0 and "not created by this account" in refused.stderr
    empty = alice.comet(
        "vault",
        "add",
        "y",
        "--type",
        "local",
        "--path",
        str(short_tmp / "none"),
        "--attach",
        check=False,
    )
    assert empty.returncode != 0 and "no Comet repository" in empty.stderr

    # comet-admin: names in filters, the snapshot id in dispatch text.
    jobs = admin("jobs", "--vault", "vault-one", "--json", check=False)
    assert jobs.returncode != 0 and "no Storage Vault" in jobs.stderr  # deleted: gone
    by_item = admin("jobs", "--user", "alice", "--item", "papers", "--json").json()
    assert {j["job_id"] for j in by_item} >= {first["job_id"], second["job_id"]}
    assert all("error" in j for j in by_item)
    by_device = admin("jobs", "--device", "alice-laptop", "--json").json()
    assert {j["job_id"] for j in by_device} >= {first["job_id"]}
    out = admin(
        "dispatch",
        "backup",
        "--device",
        "alice-laptop",
        "--item",
        "papers",
        "--vault",
        "again",
        "--wait",
    ).stdout
    assert ", snapshot " in out
    by_vault = admin("jobs", "--vault", "again", "--json").json()
    assert len(by_vault) == 1 and by_vault[0]["snapshot_id"] in out

    # delete-snapshot takes 'latest' too (this device's newest).
    alice.comet("delete-snapshot", "--vault", "again", "latest", "--wait")
    left = alice.comet("snapshots", "--vault", "again", "--json").json()
    assert [s["snapshot_id"] for s in left] == [first["snapshot_id"], second["snapshot_id"]]
