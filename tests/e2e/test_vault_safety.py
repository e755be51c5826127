"""No committed snapshot is lost to concurrent maintenance, skewed clocks, crashes,
damaged objects, or a vault that cannot be written -- shown with real processes.

COMET_SAFETY_ROUNDS sets the rounds of the two-device test (default 3 on a local vault,
2 on S3; run 20 locally); COMET_SAFETY_KILLS scales the SIGKILL points (default 20 of backup and
10 of prune).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comet.agent.maintenance import check
from comet.agent.restore import DirectoryTarget, run_restore
from tests.e2e import vault_driver
from tests.fixtures.processes import (
    AdminCli,
    AgentProcess,
    CliResult,
    ServerProcess,
    wait_for,
)

ROUNDS = int(os.environ.get("COMET_SAFETY_ROUNDS", "3"))
KILLS = int(os.environ.get("COMET_SAFETY_KILLS", "20"))
REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "safety-password-1"
# Short lock periods for every agent here: stale after 4 s, refreshed every 0.5 s,
# unindexed data spared for 6 s (production: 30 min, 5 min, 24 h 5 min).
FAST_LOCKS = {"COMET_LOCK_STALE": "4", "COMET_LOCK_REFRESH": "0.5", "COMET_PRUNE_GRACE": "6"}


def _device(server: ServerProcess, root: Path, name: str, env: dict[str, str]) -> AgentProcess:
    root.mkdir()
    agent = AgentProcess(root, env={**FAST_LOCKS, **env})
    agent.start()
    agent.comet(
        "login",
        "--server",
        server.url,
        "--username",
        "carol",
        "--password-stdin",
        "--device-name",
        name,
        stdin=PASSWORD + "\n",
    )
    wait_for(lambda: agent.status()["connected"], what=f"{name} connected")
    return agent


def _restored_file(dest: Path, name: str) -> bytes:
    (found,) = [p for p in dest.rglob(name) if p.is_file()]
    return found.read_bytes()


def _add_vault(device: AgentProcess, kind: str, path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "local":
        device.comet(
            "vault", "add", "v", "--type", "local", "--path", str(path), "--keep-last", "2"
        )
        return
    cfg = request.getfixturevalue("s3_bucket")
    device.comet(
        "vault",
        "add",
        "v",
        "--type",
        "s3",
        "--endpoint",
        cfg.endpoint_url,
        "--bucket",
        cfg.bucket,
        "--prefix",
        "safety/",
        "--access-key",
        cfg.access_key,
        "--secret-key-stdin",
        "--keep-last",
        "2",
        stdin=cfg.secret_key + "\n",
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("kind", "skew"),
    [("local", 3600), ("local", -3600), ("s3", 3600)],
    ids=["local-ahead", "local-behind", "s3-ahead"],
)
def test_maintenance_on_a_skewed_device_never_loses_a_committed_snapshot(
    server: ServerProcess,
    admin: AdminCli,
    short_tmp: Path,
    kind: str,
    skew: int,
    request: pytest.FixtureRequest,
) -> None:
    """Device A backs up a slow program while device B -- same account and vault, clock
    an hour off, judging locks as another host -- runs unlock and retention (forget +
    prune) in a loop, and now and then 'unlock --force'. Every snapshot A reports as
    committed and retention keeps restores byte-identical; deep verify stays clean."""
    admin("user", "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    a = _device(server, short_tmp / "a", "device-a", {})
    b = _device(
        server,
        short_tmp / "b",
        "device-b",
        {"COMET_CLOCK_OFFSET": str(skew), "COMET_HOSTNAME": "device-b"},
    )
    rng = random.Random(f"{kind}{skew}")
    parts = short_tmp / "parts"
    try:
        _add_vault(a, kind, short_tmp / "vault", request)
        command = f'for f in {parts}/*; do cat "$f"; sleep 0.2; done'
        a.comet("item", "add", "slow", "--type", "program", "--command", command,
                "--save-as", "stream.bin")  # fmt: skip
        committed: dict[str, bytes] = {}
        order: list[str] = []
        forced = blocked = 0
        rounds = ROUNDS if kind == "local" else max(2, ROUNDS * 2 // 3)
        for round_no in range(rounds):
            shutil.rmtree(parts, ignore_errors=True)
            parts.mkdir()
            for i in range(rng.randint(5, 8)):
                (parts / f"{i:02}").write_bytes(os.urandom(rng.randint(100_000, 400_000)))
            expected = b"".join(p.read_bytes() for p in sorted(parts.iterdir()))
            result: dict[str, CliResult] = {}

            def run_backup(result: dict[str, CliResult] = result) -> None:
                result["a"] = a.comet("backup", "slow", "--vault", "v", "--wait", "--json",
                                      check=False)  # fmt: skip

            backup = threading.Thread(target=run_backup)
            backup.start()
            force_at = rng.random() < 0.3
            while backup.is_alive():
                time.sleep(rng.uniform(0, 0.4))
                if force_at and rng.random() < 0.5:
                    b.comet("unlock", "--vault", "v", "--force", "--wait", "--json")
                    forced += 1
                    force_at = False
                else:
                    unlocked = b.comet("unlock", "--vault", "v", "--wait", "--json").json()
                    assert unlocked["removed_locks"] == [], "B removed A's live lock"
                retention = b.comet("retention", "--vault", "v", "--wait", check=False)
                if retention.returncode != 0 and "locked" in retention.stderr:
                    blocked += 1  # the message says who holds it and what to run
                    assert "pid" in retention.stderr
                    assert "comet unlock --vault v" in retention.stderr
            backup.join()
            job = result["a"].json()
            if job["status"] == "success":
                committed[job["snapshot_id"]] = expected
                order.append(job["snapshot_id"])
            else:
                assert forced, f"round {round_no}: A failed without a forced unlock: {job}"
            b.comet("retention", "--vault", "v", "--wait")  # A is done: this prune runs
            listed = {s["snapshot_id"] for s in
                      a.comet("snapshots", "--vault", "v", "--json").json()}  # fmt: skip
            assert set(order[-2:]) <= listed, "retention (keep last 2) lost a snapshot"
            for snapshot_id in order[-2:]:
                dest = short_tmp / f"restore-{round_no}-{snapshot_id[:8]}"
                a.comet("restore", snapshot_id, "--vault", "v", "--to", str(dest), "--wait")
                assert _restored_file(dest, "stream.bin") == committed[snapshot_id]
                shutil.rmtree(dest)
        assert len(order) >= rounds - forced
        assert blocked, "B's retention never ran while A was backing up"
        verify = b.comet("verify", "--vault", "v", "--read-data", "--wait", "--json").json()
        assert verify["status"] in ("success", "warning")
    finally:
        a.kill()
        b.kill()


# --- SIGKILL at random points ---------------------------------------------------------


def _driver(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.vault_driver", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_and_kill(args: tuple[str, ...], delay: float) -> tuple[str, float]:
    """Run the driver; SIGKILL it ``delay`` seconds after it is ready. Returns what it
    printed last ('' if it was killed, else 'committed <id>' / 'pruned') and how long
    it worked after 'ready'."""
    proc = _driver(*args)
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip()
    assert ready == "ready", proc.communicate()[1]
    started = time.monotonic()
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    worked = time.monotonic() - started
    if proc.returncode == -signal.SIGKILL:
        return "", worked
    if proc.returncode != 0:
        raise AssertionError(f"driver {args} failed ({proc.returncode}):\n{err}")
    return out.strip().rsplit("\n", 1)[-1], worked


def _restore_equals(vault: str, snapshot_id: str, expected: dict[str, bytes], dest: Path) -> None:
    repo = vault_driver.open_vault(vault)
    run_restore(repo, snapshot_id, DirectoryTarget(dest))
    got = {p.name: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == expected
    shutil.rmtree(dest)


def _deep_verify_clean(vault: str) -> None:
    result = check(vault_driver.open_vault(vault), read_data=True)
    assert result.ok, [str(p) for p in result.errors]


@pytest.fixture
def engine_vault(short_tmp: Path) -> Iterator[tuple[str, Path]]:
    vault = str(short_tmp / "vault")
    subprocess.run(
        [sys.executable, "-m", "tests.e2e.vault_driver", "init", vault], cwd=REPO_ROOT, check=True
    )
    yield vault, short_tmp


@pytest.mark.timeout(300)
def test_sigkill_at_random_points_of_backup_and_prune_loses_nothing(
    engine_vault: tuple[str, Path],
) -> None:
    vault, tmp = engine_vault
    rng = random.Random(11)
    src = tmp / "src"
    src.mkdir()
    committed: dict[str, dict[str, bytes]] = {}

    def change_source() -> None:
        for name in rng.sample(range(12), 4):
            (src / f"f{name}").write_bytes(os.urandom(rng.randint(1, 600_000)))

    def backup_fully() -> float:
        last, worked = _run_and_kill(("backup", vault, str(src), "item"), 60)
        assert last.startswith("committed "), last
        committed[last.split()[1]] = {p.name: p.read_bytes() for p in src.iterdir()}
        return worked

    change_source()
    backup_fully()
    change_source()
    duration = backup_fully()

    kills = attempts = 0
    while kills < KILLS:
        attempts += 1
        assert attempts < 4 * KILLS, f"only {kills} of {attempts} backups could be killed"
        change_source()
        last, _ = _run_and_kill(("backup", vault, str(src), "item"), rng.uniform(0, duration))
        if last.startswith("committed "):
            committed[last.split()[1]] = {p.name: p.read_bytes() for p in src.iterdir()}
        else:
            kills += 1
    _deep_verify_clean(vault)
    for snapshot_id, expected in list(committed.items())[-3:]:
        _restore_equals(vault, snapshot_id, expected, tmp / "out")
    backup_fully()  # the next backup succeeds without manual steps

    # Prune: forget the oldest snapshot so there is work, then kill it anywhere.
    _, prune_time = _run_and_kill(("prune", vault), 60)
    pruned_kills = attempts = 0
    while pruned_kills < max(10, KILLS // 2):
        attempts += 1
        assert attempts < 4 * max(10, KILLS // 2), f"only {pruned_kills} prunes killed"
        change_source()
        backup_fully()
        doomed = next(iter(committed))
        (Path(vault) / "snapshots" / doomed).unlink()
        del committed[doomed]
        last, worked = _run_and_kill(("prune", vault), rng.uniform(0, prune_time * 1.5))
        if last == "pruned":
            prune_time = worked
        else:
            pruned_kills += 1
        if attempts % 3 == 0:
            time.sleep(1.6)  # past the grace: leftovers of killed prunes become deletable
    _deep_verify_clean(vault)
    for snapshot_id, expected in committed.items():
        _restore_equals(vault, snapshot_id, expected, tmp / "out")
    time.sleep(1.6)
    assert _run_and_kill(("prune", vault), 120)[0] == "pruned"  # a next prune finishes
    result = check(vault_driver.open_vault(vault), read_data=True)
    assert result.problems == (), [str(p) for p in result.problems]
    backup_fully()


# --- damaged objects ------------------------------------------------------------------


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x40
    path.write_bytes(bytes(data))


def _job_log(agent: AgentProcess, job_id: str) -> str:
    return agent.comet("job", "log", job_id).stdout


@pytest.fixture
def carol(server: ServerProcess, admin: AdminCli, short_tmp: Path) -> Iterator[AgentProcess]:
    admin("user", "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    agent = _device(server, short_tmp / "carol", "carol-pc", {})
    try:
        yield agent
    finally:
        agent.kill()


def _two_items(carol: AgentProcess, tmp: Path, vault: Path) -> dict[str, Any]:
    carol.comet("vault", "add", "v", "--type", "local", "--path", str(vault))
    out: dict[str, Any] = {}
    for name in ("one", "two"):
        src = tmp / name
        src.mkdir()
        (src / "data.bin").write_bytes(os.urandom(400_000))
        carol.comet("item", "add", name, "--type", "files", "--include", str(src))
        job = carol.comet("backup", name, "--vault", "v", "--wait", "--json").json()
        out[name] = (job["snapshot_id"], (src / "data.bin").read_bytes())
    return out


def _restores(carol: AgentProcess, snapshot_id: str, expected: bytes, dest: Path) -> None:
    carol.comet("restore", snapshot_id, "--vault", "v", "--to", str(dest), "--wait")
    assert _restored_file(dest, "data.bin") == expected
    shutil.rmtree(dest)


@pytest.mark.timeout(240)
def test_one_flipped_byte_in_each_kind_of_object_never_locks_the_door(
    carol: AgentProcess, short_tmp: Path
) -> None:
    vault = short_tmp / "vault"
    items = _two_items(carol, short_tmp, vault)
    pristine = short_tmp / "pristine"
    shutil.copytree(vault, pristine)
    one_id, one_data = items["one"]
    two_id, two_data = items["two"]

    def reset() -> None:
        shutil.rmtree(vault)
        shutil.copytree(pristine, vault)

    def verify() -> tuple[dict[str, Any], str]:
        job = carol.comet("verify", "--vault", "v", "--read-data", "--wait", "--json",
                          check=False).json()  # fmt: skip
        return job, _job_log(carol, job["job_id"])

    # An index file: the vault opens, verify names it, reindex rebuilds from the packs.
    index = sorted((vault / "index").iterdir())[0]
    _flip(index)
    listed = carol.comet("snapshots", "--vault", "v", "--all-devices", "--json").json()
    assert {s["snapshot_id"] for s in listed} == {one_id, two_id}
    job, log = verify()
    assert job["status"] == "error" and index.name in log
    carol.comet("reindex", "--vault", "v", "--wait")
    assert verify()[0]["status"] in ("success", "warning")
    _restores(carol, one_id, one_data, short_tmp / "r1")
    _restores(carol, two_id, two_data, short_tmp / "r2")
    reset()

    # A snapshot: the other one still lists and restores; verify names the damaged one.
    _flip(vault / "snapshots" / one_id)
    listed = carol.comet("snapshots", "--vault", "v", "--all-devices", "--json").json()
    assert [s["snapshot_id"] for s in listed] == [two_id]
    job, log = verify()
    assert job["status"] == "error" and one_id in log
    _restores(carol, two_id, two_data, short_tmp / "r3")
    reset()

    # Packs: the tree pack (small) and the data pack of item one.
    packs = sorted((p for p in (vault / "data").rglob("*") if p.is_file()),
                   key=lambda p: p.stat().st_size)  # fmt: skip
    data_one = [p for p in packs if p.stat().st_size > 300_000]
    for victim in (packs[0], data_one[0]):
        _flip(victim, 40)  # inside the first blob
        job, log = verify()
        assert job["status"] == "error" and "damaged" in log
        assert one_id in log or two_id in log  # the affected snapshot is named
        carol.comet("reindex", "--vault", "v", "--wait")
        affected = {one_id, two_id} & {s for s in (one_id, two_id) if s in log}
        for snapshot_id, data in ((one_id, one_data), (two_id, two_data)):
            if snapshot_id not in affected:
                _restores(carol, snapshot_id, data, short_tmp / "r4")
        reset()

    # A key file: a clear error naming the file.
    (key,) = list((vault / "keys").iterdir())
    _flip(key, 2)  # the magic bytes
    failed = carol.comet("snapshots", "--vault", "v", "--json", check=False)
    assert failed.returncode != 0 and key.name in failed.stderr
    reset()


# --- a vault that cannot be written ---------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.mark.timeout(180)
def test_restore_and_verify_work_on_a_read_only_and_on_a_full_vault(
    carol: AgentProcess, short_tmp: Path
) -> None:
    vault = short_tmp / "vault"
    vault.mkdir()
    _mount("-t", "tmpfs", "-o", "size=24m", "tmpfs", str(vault))
    try:
        items = _two_items(carol, short_tmp, vault)
        one_id, one_data = items["one"]

        # Read-only: a read-only bind mount over the vault.
        _mount("--bind", str(vault), str(vault))
        _mount("-o", "remount,bind,ro", str(vault))
        try:
            job = carol.comet("restore", one_id, "--vault", "v", "--to",
                              str(short_tmp / "ro"), "--wait", "--json").json()  # fmt: skip
            assert job["status"] == "warning"
            assert "read-only" in _job_log(carol, job["job_id"])
            assert _restored_file(short_tmp / "ro", "data.bin") == one_data
            verify = carol.comet("verify", "--vault", "v", "--read-data", "--wait",
                                 "--json").json()  # fmt: skip
            assert verify["status"] in ("success", "warning")
            listed = carol.comet("snapshots", "--vault", "v", "--all-devices", "--json").json()
            assert len(listed) == 2
            browsed = carol.comet("ls", "--vault", "v", one_id, "--json").json()
            assert browsed  # browsing needs no write access either
        finally:
            subprocess.run(["umount", str(vault)], check=True)

        # Full: fill the filesystem to the last byte.
        fd = os.open(vault / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for block in (1 << 20, 4096, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * block)
                except OSError:
                    pass
        finally:
            os.close(fd)
        assert shutil.disk_usage(vault).free == 0
        job = carol.comet("restore", one_id, "--vault", "v", "--to", str(short_tmp / "full"),
                          "--wait", "--json").json()  # fmt: skip
        assert job["status"] in ("success", "warning"), _job_log(carol, job["job_id"])
        assert _restored_file(short_tmp / "full", "data.bin") == one_data
        verify = carol.comet("verify", "--vault", "v", "--wait", "--json").json()
        assert verify["status"] in ("success", "warning")
        failed = carol.comet("backup", "one", "--vault", "v", "--wait", "--json", check=False)
        assert failed.returncode != 0
        assert "(None)" not in failed.stderr and "full" in failed.stderr
    finally:
        subprocess.run(["umount", "-l", str(vault)], check=False)


@pytest.mark.timeout(180)
def test_a_sigkilled_agents_lock_blocks_nothing_and_unlock_removes_what_it_says(
    server: ServerProcess, admin: AdminCli, short_tmp: Path
) -> None:
    """The agent is SIGKILLed in the middle of a slow backup: its lock stays behind. The
    restarted agent's verify and retention run at once (the holder's process is gone)
    and the admin's 'dispatch unlock' removes it. 'comet unlock --force' removes a
    running backup's lock (from another device), lists it, and that backup fails
    instead of committing."""
    admin("user", "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    # Production lock periods: only the dead-process rule can free the lock quickly.
    agent = _device(server, short_tmp / "a", "device-a", {"COMET_LOCK_STALE": "1800",
                    "COMET_LOCK_REFRESH": "300", "COMET_PRUNE_GRACE": "87300"})  # fmt: skip
    vault = short_tmp / "vault"
    locks = vault / "locks"

    def lock_files() -> list[Path]:
        return list(locks.iterdir()) if locks.exists() else []

    other: AgentProcess | None = None
    try:
        agent.comet("vault", "add", "v", "--type", "local", "--path", str(vault))
        agent.comet("item", "add", "slow", "--type", "program", "--command",
                    "head -c 300000 /dev/urandom; sleep 5", "--save-as", "s.bin")  # fmt: skip
        agent.comet("backup", "slow", "--vault", "v")
        wait_for(lock_files, what="the backup's lock")
        agent.kill()
        assert len(lock_files()) == 1
        agent.start()
        wait_for(lambda: agent.status()["connected"], what="reconnected")
        verify = agent.comet("verify", "--vault", "v", "--wait", "--json").json()
        assert verify["status"] in ("success", "warning")
        retention = agent.comet("retention", "--vault", "v", "--wait", "--json").json()
        assert retention["status"] == "success"
        device = agent.status()["device_id"]
        # Waited for, so a failure shows the job's own outcome rather than a timeout.
        unlocked = admin("dispatch", "unlock", "--device", device, "--vault", "v", "--wait",
                         "--json").json()  # fmt: skip
        assert unlocked["status"] == "success", unlocked
        assert lock_files() == [], (unlocked, [p.name for p in lock_files()])

        result: dict[str, CliResult] = {}

        def run_backup() -> None:
            result["job"] = agent.comet("backup", "slow", "--vault", "v", "--wait", "--json",
                                        check=False)  # fmt: skip

        # Jobs of one vault run one at a time per agent: another device forces it.
        other = _device(server, short_tmp / "b", "device-b", {})
        backup = threading.Thread(target=run_backup)
        backup.start()
        wait_for(lock_files, what="the second backup's lock")
        forced = other.comet("unlock", "--vault", "v", "--force", "--wait", "--json").json()
        assert forced["status"] == "success" and len(forced["removed_locks"]) == 1
        assert "backup" in forced["removed_locks"][0]["detail"]
        backup.join()
        job = result["job"].json()
        assert job["status"] == "error" and not job["snapshot_id"]
        assert "was removed" in result["job"].stderr
        assert not (vault / "snapshots").exists() or not list((vault / "snapshots").iterdir())
        assert agent.comet("backup", "slow", "--vault", "v", "--wait", "--json").json()[
            "snapshot_id"
        ]
    finally:
        agent.kill()
        if other is not None:
            other.kill()
