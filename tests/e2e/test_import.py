"""Import: a borgmatic config and a restic setup become working items and schedules."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.processes import ALICE_PASSWORD, AdminCli, AgentProcess, ServerProcess, wait_for


def write_configs(home: Path, data: Path, repos: Path) -> None:
    (home / ".config" / "borgmatic").mkdir(parents=True)
    (home / ".config" / "borgmatic" / "config.yaml").write_text(
        f"""# nightly borg backup
source_directories:
    - {data}
repositories:
    - path: {repos}/borg
      label: local
exclude_patterns:
    - '*.tmp'
    - {data}/cache
keep_daily: 7
keep_weekly: 4
"""
    )
    (home / ".config" / "restic").mkdir(parents=True)
    (home / ".config" / "restic" / "home.env").write_text(
        f"RESTIC_REPOSITORY={repos}/restic\nBACKUP_PATHS={data}\n"
        "RESTIC_PASSWORD_FILE=/nonexistent\n"
    )


def test_borgmatic_and_restic_settings_become_working_items_and_schedules(
    server: ServerProcess, admin: AdminCli, short_tmp: Path
) -> None:
    home, data, repos = short_tmp / "home", short_tmp / "data", short_tmp / "repos"
    for d in (home, data / "cache", repos):
        d.mkdir(parents=True)
    (data / "keep.txt").write_text("important\n")
    (data / "skip.tmp").write_text("scratch\n")
    (data / "cache" / "blob").write_text("cache\n")
    write_configs(home, data, repos)

    root = short_tmp / "agent-home"
    root.mkdir()
    agent = AgentProcess(root, env={"HOME": str(home)})
    agent.start()
    try:
        admin("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        agent.comet(
            "login",
            "--server",
            server.url,
            "--username",
            "alice",
            "--password-stdin",
            stdin=ALICE_PASSWORD + "\n",
        )
        wait_for(lambda: agent.status()["connected"])
        sources = agent.comet("import", "--list", "--json").json()
        by_product = {s["product"]: s for s in sources}
        assert {"borgmatic", "restic-env"} <= set(by_product)

        job = agent.comet("import", by_product["borgmatic"]["source_id"], "--json").json()
        assert job["status"] in ("success", "warning") and job["classification_code"] == 4008
        agent.comet("import", by_product["restic-env"]["source_id"])

        items = agent.comet("item", "list", "--json").json()
        vaults = agent.comet("vault", "list", "--json").json()
        schedules = agent.comet("schedule", "list", "--json").json()
        assert len(items) == 2 and len(vaults) == 2 and len(schedules) == 2
        locations = sorted(v["location"] for v in vaults)
        assert locations == [f"{repos}/borg-comet", f"{repos}/restic-comet"]
        assert all(s["frequency"] == "daily" for s in schedules)
        borg_item = next(i for i in items if "*.tmp" in i["excludes"] or i["exclude_regexes"])

        borg_vault = next(v for v in vaults if v["location"].endswith("borg-comet"))
        done = agent.comet(
            "backup", borg_item["item_id"], "--vault", borg_vault["vault_id"], "--wait", "--json"
        ).json()
        assert done["status"] == "success"
        dest = short_tmp / "restored"
        agent.comet(
            "restore",
            done["snapshot_id"],
            "--vault",
            borg_vault["vault_id"],
            "--to",
            str(dest),
            "--wait",
        )
        out = dest / str(data).lstrip("/")
        assert (out / "keep.txt").read_text() == "important\n"
        assert not (out / "skip.tmp").exists() and not (out / "cache" / "blob").exists()
    finally:
        agent.kill()
