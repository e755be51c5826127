"""Backup, restore and vault maintenance end to end: server + agent + comet CLI."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.processes import AdminCli, AgentProcess, wait_for


def make_rich_tree(root: Path) -> None:
    (root / "docs" / "empty-dir").mkdir(parents=True)
    (root / "docs" / "résumé ünïcødé 文件.txt").write_text("unicode name\n")
    (root / "docs" / "empty.txt").write_bytes(b"")
    (root / "docs" / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "docs" / "text.sql").write_text("INSERT INTO t VALUES (1, 'x');\n" * 200_000)
    os.symlink("random.bin", root / "docs" / "link-to-random")
    os.symlink("/nonexistent/target", root / "docs" / "dangling")
    os.link(root / "docs" / "text.sql", root / "docs" / "hardlink.sql")
    with open(root / "docs" / "sparse.img", "wb") as f:
        f.truncate(64 * 1024 * 1024)
        f.seek(10 * 1024 * 1024)
        f.write(b"data in the middle")
    os.mkfifo(root / "docs" / "a-fifo")
    os.chmod(root / "docs" / "text.sql", 0o640)
    os.utime(root / "docs" / "empty.txt", ns=(1_600_000_000_123_456_789,) * 2)


def tree_state(root: Path) -> dict[str, Any]:
    """What must survive a round trip: types, modes, mtimes, contents, links."""
    state: dict[str, Any] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            entry: dict[str, Any] = {
                "mode": stat.S_IMODE(st.st_mode),
                "type": stat.S_IFMT(st.st_mode),
            }
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                entry["mtime_ns"] = st.st_mtime_ns
                entry["size"] = st.st_size
                entry["data"] = path.read_bytes() if st.st_size < 5_000_000 else None
                if st.st_nlink > 1:
                    entry["linked_with"] = inodes.setdefault(st.st_ino, rel)
            state[rel] = entry
    return state


def setup_item(alice: AgentProcess, source: Path, vault_dir: Path) -> None:
    alice.comet("vault", "add", "local-vault", "--type", "local", "--path", str(vault_dir))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))


def backup(alice: AgentProcess, check: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = alice.comet(
        "backup", "docs", "--vault", "local-vault", "--wait", "--json", check=check
    ).json()
    return result


def vault_bytes(vault_dir: Path) -> int:
    return sum(p.stat().st_size for p in vault_dir.rglob("*") if p.is_file())


def test_rich_tree_round_trips_and_unchanged_backup_uploads_nothing(
    alice: AgentProcess, short_tmp: Path
) -> None:
    source, vault_dir, dest = short_tmp / "src", short_tmp / "vault", short_tmp / "dest"
    source.mkdir()
    make_rich_tree(source)
    setup_item(alice, source, vault_dir)

    first = backup(alice)
    assert first["status"] == "success" and first["status_code"] == 5000
    assert first["snapshot_id"] and first["uploaded_bytes"] > 3_000_000
    second = backup(alice)
    assert second["status"] == "success"
    assert second["snapshot_id"] != first["snapshot_id"]
    assert second["uploaded_bytes"] < 20_000  # trees above the include path only

    restored = alice.comet(
        "restore",
        "latest",
        "--item",
        "docs",
        "--vault",
        "local-vault",
        "--to",
        str(dest),
        "--wait",
        "--json",
    ).json()
    assert restored["status"] == "success"
    out = dest / str(source).lstrip("/")
    assert tree_state(out) == tree_state(source)
    assert stat.S_ISFIFO((out / "docs" / "a-fifo").lstat().st_mode)
    sparse = (out / "docs" / "sparse.img").stat()
    assert sparse.st_size == 64 * 1024 * 1024 and sparse.st_blocks * 512 < 8 * 1024 * 1024
    assert (out / "docs" / "sparse.img").read_bytes()[10 * 1024 * 1024 :][:18] == (
        b"data in the middle"
    )

    history = alice.comet("history", "--json").json()
    assert [j["classification"] for j in history] == ["restore", "backup", "backup"]


def test_delete_snapshot_and_retention_shrink_the_vault(
    alice: AgentProcess, short_tmp: Path
) -> None:
    source, vault_dir = short_tmp / "src", short_tmp / "vault"
    source.mkdir()
    alice.comet(
        "vault",
        "add",
        "local-vault",
        "--type",
        "local",
        "--path",
        str(vault_dir),
        "--keep-last",
        "1",
    )
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    snapshots = []
    for i in range(3):
        (source / f"generation-{i}.bin").write_bytes(os.urandom(2 * 1024 * 1024))
        if i:
            (source / f"generation-{i - 1}.bin").unlink()
        snapshots.append(backup(alice)["snapshot_id"])

    before = vault_bytes(vault_dir)
    alice.comet("delete-snapshot", "--vault", "local-vault", snapshots[0], "--wait")
    after_delete = vault_bytes(vault_dir)
    assert after_delete < before - 1_500_000
    listed = [
        s["snapshot_id"]
        for s in alice.comet("snapshots", "--vault", "local-vault", "--json").json()
    ]
    assert listed == snapshots[1:]

    alice.comet("retention", "--vault", "local-vault", "--wait")
    assert vault_bytes(vault_dir) < after_delete - 1_500_000
    listed = [
        s["snapshot_id"]
        for s in alice.comet("snapshots", "--vault", "local-vault", "--json").json()
    ]
    assert listed == snapshots[2:]


def test_reindex_restores_every_snapshot_after_all_indexes_are_deleted(
    alice: AgentProcess, short_tmp: Path
) -> None:
    source, vault_dir, dest = short_tmp / "src", short_tmp / "vault", short_tmp / "dest"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(1024 * 1024))
    setup_item(alice, source, vault_dir)
    first = backup(alice)["snapshot_id"]
    (source / "b.bin").write_bytes(os.urandom(1024 * 1024))
    second = backup(alice)["snapshot_id"]
    shutil.rmtree(vault_dir / "index")
    failed = alice.comet(
        "restore", first, "--vault", "local-vault", "--to", str(dest), "--wait", check=False
    )
    assert failed.returncode != 0
    alice.comet("reindex", "--vault", "local-vault", "--wait")
    for snap in (first, second):
        shutil.rmtree(dest, ignore_errors=True)
        alice.comet("restore", snap, "--vault", "local-vault", "--to", str(dest), "--wait")
        assert (dest / str(source).lstrip("/") / "a.bin").read_bytes() == (
            source / "a.bin"
        ).read_bytes()


def test_a_flipped_byte_is_found_by_deep_verify_and_other_files_still_restore(
    alice: AgentProcess, short_tmp: Path
) -> None:
    source, vault_dir, dest = short_tmp / "src", short_tmp / "vault", short_tmp / "dest"
    (source / "big").mkdir(parents=True)
    (source / "small").mkdir()
    (source / "big" / "victim.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    (source / "small" / "note.txt").write_text("still fine\n")
    setup_item(alice, source, vault_dir)
    snapshot = backup(alice)["snapshot_id"]
    alice.comet("verify", "--vault", "local-vault", "--read-data", "--wait")

    biggest = max(
        (vault_dir / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0
    )
    data = bytearray(biggest.read_bytes())
    data[len(data) // 3] ^= 0xFF
    biggest.write_bytes(bytes(data))

    result = alice.comet(
        "verify", "--vault", "local-vault", "--read-data", "--wait", "--json", check=False
    )
    assert result.returncode != 0
    job = result.json()
    assert job["status"] == "error"
    log = alice.comet("job", "log", job["job_id"]).stdout
    assert snapshot in log and "victim.bin" in log

    alice.comet(
        "restore",
        snapshot,
        "--vault",
        "local-vault",
        "--to",
        str(dest),
        "--path",
        str(source / "small"),
        "--wait",
    )
    assert (dest / str(source).lstrip("/") / "small" / "note.txt").read_text() == "still fine\n"


def test_sigkill_mid_backup_keeps_earlier_snapshots_and_the_next_backup_works(
    alice: AgentProcess, short_tmp: Path
) -> None:
    source, vault_dir, dest = short_tmp / "src", short_tmp / "vault", short_tmp / "dest"
    source.mkdir()
    (source / "first.txt").write_text("first generation\n")
    setup_item(alice, source, vault_dir)
    first = backup(alice)["snapshot_id"]

    for i in range(12):
        (source / f"bulk-{i}.bin").write_bytes(os.urandom(16 * 1024 * 1024))
    started = alice.comet("backup", "docs", "--vault", "local-vault", "--json").json()
    wait_for(
        lambda: (
            any(vault_dir.joinpath("data").rglob("*"))
            and len(list((vault_dir / "data").rglob("*"))) > 6
        ),
        timeout=60,
        interval=0.02,
        what="upload under way",
    )
    assert alice.proc is not None
    alice.proc.send_signal(signal.SIGKILL)
    alice.proc.wait(timeout=10)
    alice.proc = None

    alice.start()
    log = alice.comet("job", "log", started["job_id"], "--json").json()
    assert log["job"]["status"] == "abandoned"
    assert "stopped while this job was running" in log["entries"][-1]["message"]

    alice.comet("restore", first, "--vault", "local-vault", "--to", str(dest), "--wait")
    assert (dest / str(source).lstrip("/") / "first.txt").read_text() == "first generation\n"
    wait_for(lambda: alice.status()["connected"], what="reconnect after restart")
    again = backup(alice)
    assert again["status"] == "success"
    listed = alice.comet("snapshots", "--vault", "local-vault", "--json").json()
    assert [s["snapshot_id"] for s in listed] == [first, again["snapshot_id"]]

    # And the scheduler runs again after the crash.
    alice.comet("schedule", "add", "--item", "docs", "--vault", "local-vault", "--every", "2")

    def scheduled() -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = alice.comet("history", "--json").json()
        return [
            j
            for j in jobs
            if j["classification"] == "backup"
            and j["status"] == "success"
            and j["job_id"] != again["job_id"]
            and j["started_at"] > again["started_at"]
        ]

    wait_for(scheduled, timeout=60, what="a scheduled backup after the restart")


def test_failed_backup_exits_non_zero_with_the_reason(alice: AgentProcess, short_tmp: Path) -> None:
    vault_dir = short_tmp / "vault"
    alice.comet("vault", "add", "local-vault", "--type", "local", "--path", str(vault_dir))
    alice.comet(
        "item",
        "add",
        "dump",
        "--type",
        "program",
        "--command",
        "echo partial; echo broken >&2; exit 3",
        "--save-as",
        "dump.sql",
    )
    result = alice.comet(
        "backup", "dump", "--vault", "local-vault", "--wait", "--json", check=False
    )
    assert result.returncode != 0
    assert result.json()["status"] == "error"
    assert "exit" in result.stderr or "3" in result.stderr
    missing = alice.comet("backup", "nope", "--vault", "local-vault", check=False)
    assert missing.returncode != 0 and "no Protected Item 'nope'" in missing.stderr


def test_jobs_reach_the_server_history(
    alice: AgentProcess, admin: AdminCli, short_tmp: Path
) -> None:
    source, vault_dir = short_tmp / "src", short_tmp / "vault"
    source.mkdir()
    (source / "f.txt").write_text("x")
    setup_item(alice, source, vault_dir)
    job = backup(alice)
    rows = wait_for(
        lambda: [
            j
            for j in admin("jobs", "--json").json()
            if j["job_id"] == job["job_id"] and j["status"] == "success"
        ],
        what="job in server history",
    )
    assert rows[0]["snapshot_id"] == job["snapshot_id"]
    assert rows[0]["user"] == "alice" and rows[0]["classification_code"] == 4001


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_network_vaults_back_up_and_restore(
    alice: AgentProcess, short_tmp: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    source, dest = short_tmp / "src", short_tmp / "dest"
    source.mkdir()
    (source / "payload.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    if kind == "s3":
        cfg = request.getfixturevalue("s3_bucket")
        alice.comet(
            "vault",
            "add",
            "net",
            "--type",
            "s3",
            "--endpoint",
            cfg.endpoint_url,
            "--bucket",
            cfg.bucket,
            "--prefix",
            "comet/",
            "--access-key",
            cfg.access_key,
            "--secret-key-stdin",
            stdin=cfg.secret_key + "\n",
        )
    else:
        cfg = request.getfixturevalue("sftp_config")
        where = ["--host", cfg.host, "--port", str(cfg.port), "--user", cfg.username]
        where += ["--path", cfg.root, "--host-key", cfg.host_key or "", "--password-stdin"]
        alice.comet("vault", "add", "net", "--type", "sftp", *where, stdin=cfg.password + "\n")
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    job = alice.comet("backup", "docs", "--vault", "net", "--wait", "--json").json()
    assert job["status"] == "success"
    alice.comet("restore", job["snapshot_id"], "--vault", "net", "--to", str(dest), "--wait")
    assert (dest / str(source).lstrip("/") / "payload.bin").read_bytes() == (
        source / "payload.bin"
    ).read_bytes()


def test_vault_and_item_commands_wrap_the_backup_and_bandwidth_is_capped(
    alice: AgentProcess, short_tmp: Path
) -> None:
    source, trace = short_tmp / "src", short_tmp / "trace.txt"
    source.mkdir()
    (source / "payload.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    alice.comet(
        "vault",
        "add",
        "v",
        "--type",
        "local",
        "--path",
        str(short_tmp / "vault"),
        "--pre",
        f"echo vault-pre >> {trace}",
        "--post",
        f"echo vault-post >> {trace}",
    )
    alice.comet(
        "item",
        "add",
        "docs",
        "--type",
        "files",
        "--include",
        str(source),
        "--pre",
        f"echo item-pre >> {trace}",
        "--post",
        f"echo item-post >> {trace}",
    )
    started = time.monotonic()
    job = alice.comet(
        "backup", "docs", "--vault", "v", "--wait", "--json", "--bandwidth-limit", "1000000"
    ).json()
    elapsed = time.monotonic() - started
    assert job["status"] == "success"
    assert trace.read_text().split() == ["vault-pre", "item-pre", "item-post", "vault-post"]
    # 3 MB at 1 MB/s with a one-second burst allowance: at least two seconds.
    assert elapsed >= 1.8
    log = alice.comet("job", "log", job["job_id"]).stdout
    assert "bandwidth limited to 1000000 bytes/s" in log

    (source / "payload.bin").write_bytes(os.urandom(1024))
    alice.comet(
        "item",
        "add",
        "failing",
        "--type",
        "files",
        "--include",
        str(source),
        "--pre",
        "echo cannot prepare >&2; exit 9",
    )
    failed = alice.comet("backup", "failing", "--vault", "v", "--wait", "--json", check=False)
    assert failed.returncode != 0 and failed.json()["status"] == "error"
    assert "exited with code 9" in alice.comet("job", "log", failed.json()["job_id"]).stdout
