"""Every restore type through the CLI and the agent, checked with the real tools;
browsing and searching snapshots; restoring another device's and deleted items."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.processes import ALICE_PASSWORD, AgentProcess, ServerProcess, wait_for


@pytest.fixture
def backed_up(alice: AgentProcess, short_tmp: Path) -> dict[str, Any]:
    source = short_tmp / "src"
    (source / "docs" / "deep").mkdir(parents=True)
    (source / "docs" / "report.txt").write_text("quarterly report\n")
    (source / "docs" / "deep" / "data.bin").write_bytes(os.urandom(300_000))
    (source / "notes.md").write_text("# notes\n")
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    job = alice.comet("backup", "docs", "--vault", "v", "--wait", "--json").json()
    return {"source": source, "snapshot": job["snapshot_id"]}


def restore(alice: AgentProcess, snapshot: str, *args: str, check: bool = True) -> Any:
    return alice.comet("restore", snapshot, "--vault", "v", *args, "--wait", "--json", check=check)


def test_archives_open_with_the_standard_tools(
    alice: AgentProcess, backed_up: dict[str, Any], short_tmp: Path
) -> None:
    source, snapshot = backed_up["source"], backed_up["snapshot"]
    inner = str(source).lstrip("/")
    for fmt, name in (
        ("zip", "out.zip"),
        ("tar.zst", "out.tar.zst"),
        ("tar", "out.tar"),
        ("tar.gz", "out.tar.gz"),
        ("sqfs", "out.sqfs"),
    ):
        out = short_tmp / name
        assert (
            restore(alice, snapshot, "--archive", fmt, "--output", str(out)).json()["status"]
            == "success"
        )
        assert not list(short_tmp.glob(".*.partial"))
        extract = short_tmp / f"x-{fmt}"
        extract.mkdir()
        if fmt == "zip":
            subprocess.run(["unzip", "-q", str(out), "-d", str(extract)], check=True)
            assert all(not n.startswith(("/", "..")) for n in zipfile.ZipFile(out).namelist())
        elif fmt == "sqfs":
            subprocess.run(
                ["unsquashfs", "-q", "-d", str(extract / "root"), str(out)],
                check=True,
                capture_output=True,
            )
            extract = extract / "root"
        else:
            subprocess.run(["tar", "-xf", str(out), "-C", str(extract)], check=True)
        assert (extract / inner / "docs" / "deep" / "data.bin").read_bytes() == (
            source / "docs" / "deep" / "data.bin"
        ).read_bytes()


def test_simulate_program_and_partial_selection(
    alice: AgentProcess, backed_up: dict[str, Any], short_tmp: Path
) -> None:
    source, snapshot = backed_up["source"], backed_up["snapshot"]
    simulated = restore(alice, snapshot, "--simulate").json()
    assert simulated["status"] == "success" and simulated["files"] == 3

    sink = short_tmp / "sink"
    sink.mkdir()
    restore(alice, snapshot, "--program", f'cat > "{sink}/$COMET_RESTORE_NAME"', "--per-file")
    assert (sink / "report.txt").read_text() == "quarterly report\n"

    unpacked = short_tmp / "unpacked"
    unpacked.mkdir()
    restore(
        alice,
        snapshot,
        "--program",
        f"tar -x -C {unpacked}",
        "--as-archive",
        "--path",
        str(source / "docs" / "deep"),
    )
    got = [p.name for p in unpacked.rglob("*") if p.is_file()]
    assert got == ["data.bin"]

    failed = restore(
        alice, snapshot, "--program", "echo nope >&2; exit 4", "--per-file", check=False
    )
    assert failed.returncode != 0 and failed.json()["status"] == "error"
    log = alice.comet("job", "log", failed.json()["job_id"]).stdout
    assert "4" in log and "nope" in log


def test_overwrite_modes_and_original_paths(
    alice: AgentProcess, backed_up: dict[str, Any], short_tmp: Path
) -> None:
    source, snapshot = backed_up["source"], backed_up["snapshot"]
    report = source / "docs" / "report.txt"
    report.write_text("edited locally\n")
    restore(alice, snapshot, "--original-paths")  # default: skip existing
    assert report.read_text() == "edited locally\n"
    os.utime(report, (1, 1))  # now older than the snapshot's copy
    restore(alice, snapshot, "--original-paths", "--overwrite-if-newer")
    assert report.read_text() == "quarterly report\n"
    report.write_text("edited again\n")
    restore(alice, snapshot, "--original-paths", "--overwrite")
    assert report.read_text() == "quarterly report\n"
    missing = alice.comet(
        "restore", "ffff", "--vault", "v", "--to", "/tmp/x", "--wait", check=False
    )
    assert missing.returncode != 0 and "no single snapshot matches 'ffff'" in missing.stderr


def test_ls_and_find(alice: AgentProcess, backed_up: dict[str, Any]) -> None:
    source, snapshot = backed_up["source"], backed_up["snapshot"]
    listing = alice.comet("ls", snapshot, str(source / "docs"), "--vault", "v", "--json").json()
    assert sorted(e["path"].rsplit("/", 1)[-1] for e in listing) == ["deep", "report.txt"]
    found = alice.comet("find", "*.bin", "--vault", "v", "--json").json()
    assert [f["path"] for f in found] == [str(source / "docs" / "deep" / "data.bin")]
    assert found[0]["snapshot_id"] == snapshot and found[0]["size"] == 300_000
    big = alice.comet(
        "find", ".*", "--regex", "--min-size", "1000", "--vault", "v", "--json"
    ).json()
    assert len(big) == 1


def test_a_second_device_restores_the_first_devices_snapshots_and_unknown_items(
    server: ServerProcess, alice: AgentProcess, backed_up: dict[str, Any], short_tmp: Path
) -> None:
    other_root = short_tmp / "device2"
    other_root.mkdir()
    second = AgentProcess(other_root)
    second.start()
    try:
        second.comet(
            "login",
            "--server",
            server.url,
            "--username",
            "alice",
            "--password-stdin",
            "--device-name",
            "desktop",
            stdin=ALICE_PASSWORD + "\n",
        )
        wait_for(lambda: second.status()["connected"])
        assert second.comet("snapshots", "--vault", "v", "--json").json() == []
        theirs = second.comet("snapshots", "--vault", "v", "--all-devices", "--json").json()
        assert [s["snapshot_id"] for s in theirs] == [backed_up["snapshot"]]
        dest = short_tmp / "restored-on-2"
        second.comet("restore", backed_up["snapshot"], "--vault", "v", "--to", str(dest), "--wait")
        inner = str(backed_up["source"]).lstrip("/")
        assert (dest / inner / "notes.md").read_text() == "# notes\n"
        refused = second.comet("backup", "docs", "--vault", "v", check=False)
        assert refused.returncode != 0 and "another device" in refused.stderr
    finally:
        second.kill()


def test_snapshots_of_a_deleted_item_are_unknown_items_and_restore(
    alice: AgentProcess, backed_up: dict[str, Any], short_tmp: Path
) -> None:
    alice.comet("item", "delete", "docs")
    assert alice.comet("item", "list", "--json").json() == []
    unknown = alice.comet("snapshots", "--vault", "v", "--unknown", "--json").json()
    assert [s["snapshot_id"] for s in unknown] == [backed_up["snapshot"]]
    assert unknown[0]["unknown_item"] is True
    dest = short_tmp / "from-unknown"
    restore(alice, backed_up["snapshot"], "--to", str(dest))
    inner = str(backed_up["source"]).lstrip("/")
    assert (dest / inner / "docs" / "report.txt").read_text() == "quarterly report\n"
