"""The agent as a background service: schedules, lock/disconnect, the outbox across a
server outage, and commands dispatched by an admin over the live connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fixtures.processes import AdminCli, AgentProcess, ServerProcess, wait_for
from tests.security.local_api import set_admin_view_files


def setup_item(alice: AgentProcess, tmp: Path) -> Path:
    source = tmp / "src"
    source.mkdir()
    (source / "file.txt").write_text("scheduled data\n")
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(tmp / "vault"))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    return source


def backups(alice: AgentProcess) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = alice.comet("history", "--json").json()
    return [j for j in jobs if j["classification"] == "backup"]


def test_periodic_schedule_runs_with_no_app_keeps_running_locked_and_stops_disconnected(
    alice: AgentProcess, short_tmp: Path
) -> None:
    setup_item(alice, short_tmp)
    alice.comet("schedule", "add", "--item", "docs", "--vault", "v", "--every", "2")
    listed = alice.comet("schedule", "list", "--json").json()
    assert listed[0]["frequency_code"] == 8015 and listed[0]["when"] == "every 2 s"

    wait_for(lambda: len(backups(alice)) >= 2, timeout=30, what="two scheduled backups")
    assert all(j["status"] == "success" for j in backups(alice))

    alice.comet("lock")
    count = len(backups(alice))
    wait_for(lambda: len(backups(alice)) >= count + 2, timeout=30, what="runs while locked")

    alice.comet("disconnect")
    wait_for(lambda: not alice.status()["running_jobs"], timeout=30)
    count = len(backups(alice))
    import time

    time.sleep(5)
    assert len(backups(alice)) == count


def test_a_backup_during_a_server_outage_reaches_history_once_it_returns(
    server: ServerProcess, admin: AdminCli, alice: AgentProcess, short_tmp: Path
) -> None:
    setup_item(alice, short_tmp)
    server.stop()
    wait_for(lambda: not alice.status()["connected"], what="outage noticed")
    job = alice.comet("backup", "docs", "--vault", "v", "--wait", "--json").json()
    assert job["status"] == "success"  # the vault is local; the server is not needed
    server.start()
    rows = wait_for(
        lambda: [j for j in admin("jobs", "--json").json() if j["job_id"] == job["job_id"]],
        timeout=30,
        what="job shipped after the outage",
    )
    assert len(rows) == 1 and rows[0]["status"] == "success"
    assert rows[0]["snapshot_id"] == job["snapshot_id"]


def test_admin_dispatches_backup_restore_retention_and_cancel(
    admin: AdminCli, alice: AgentProcess, short_tmp: Path
) -> None:
    source = setup_item(alice, short_tmp)
    device = alice.status()["device_id"]
    profile_items = alice.comet("item", "list", "--json").json()
    vaults = alice.comet("vault", "list", "--json").json()
    item_id, vault_id = profile_items[0]["item_id"], vaults[0]["vault_id"]

    result = admin(
        "dispatch",
        "backup",
        "--device",
        device,
        "--item",
        item_id,
        "--vault",
        vault_id,
        "--wait",
        "--json",
    ).json()
    job = result.get("job", result)
    assert job["status"] == "success" and job["snapshot_id"]

    # An admin restores elsewhere than the original paths only with the user's consent,
    # and only into a directory the device's own policy allows (by default its
    # state dir's restores/).
    set_admin_view_files(alice, True)
    dest = alice.state_dir / "restores" / "dest"
    admin(
        "dispatch",
        "restore",
        "--device",
        device,
        "--vault",
        vault_id,
        "--snapshot",
        job["snapshot_id"],
        "--to",
        str(dest),
        "--wait",
    )
    assert (dest / str(source).lstrip("/") / "file.txt").read_text() == "scheduled data\n"

    admin("dispatch", "retention", "--device", device, "--vault", vault_id, "--wait")
    kinds = {j["classification"] for j in alice.comet("history", "--json").json()}
    assert {"backup", "restore", "retention"} <= kinds

    # A long stream of data, so the cancel surely arrives while the job runs.
    alice.comet(
        "item",
        "add",
        "stream",
        "--type",
        "program",
        "--command",
        "head -c 20000000000 /dev/urandom",
        "--save-as",
        "random.bin",
    )
    started = alice.comet("backup", "stream", "--vault", "v", "--json").json()
    admin("dispatch", "cancel", "--device", device, started["job_id"])
    log = wait_for(
        lambda: (
            (d := alice.comet("job", "log", started["job_id"], "--json").json())["job"]["status"]
            != "running"
            and d
        ),
        timeout=60,
        what="cancel to take effect",
    )
    assert log["job"]["status"] == "cancelled"

    gone = admin(
        "dispatch",
        "backup",
        "--device",
        "no-such-device",
        "--item",
        item_id,
        "--vault",
        vault_id,
        check=False,
    )
    assert gone.returncode != 0 and "no-such-device" in gone.stderr


def test_scheduled_backups_run_the_automatic_retention_pass(
    server: ServerProcess, alice: AgentProcess, short_tmp: Path
) -> None:
    source = short_tmp / "src"
    source.mkdir()
    (source / "file.txt").write_text("x")
    alice.comet(
        "vault",
        "add",
        "v",
        "--type",
        "local",
        "--path",
        str(short_tmp / "vault"),
        "--keep-last",
        "2",
    )
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    alice.comet("schedule", "add", "--item", "docs", "--vault", "v", "--every", "2")
    wait_for(lambda: len(backups(alice)) >= 5, timeout=60, what="five scheduled backups")

    def retention_runs() -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = alice.comet("history", "--json").json()
        return [j for j in jobs if j["classification"] == "retention"]

    wait_for(lambda: len(retention_runs()) >= 3, timeout=30, what="retention passes")
    assert all(j["status"] == "success" for j in retention_runs() if j["status"] != "running")
    alice.comet("disconnect")
    wait_for(lambda: not alice.status()["running_jobs"], timeout=30)
    alice.comet(
        "login",
        "--server",
        server.url,
        "--username",
        "alice",
        "--password-stdin",
        stdin="alice-password-1\n",
    )
    snapshots = alice.comet("snapshots", "--vault", "v", "--json").json()
    assert 1 <= len(snapshots) <= 3
