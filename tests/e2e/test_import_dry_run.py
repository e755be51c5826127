"""`comet import SOURCE --dry-run` prints exactly what the import then creates and
changes nothing; RESTIC_FILES_FROM and borgmatic's `~` are honoured end to end; a
policy's "hide Import" holds for the CLI too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fixtures.processes import ALICE_PASSWORD, AdminCli, AgentProcess, ServerProcess


def without_ids(doc: dict[str, Any]) -> dict[str, Any]:
    """Objects compared by content: ids become their item/vault names."""
    names = {v["vault_id"]: v["name"] for v in doc["vaults"]}
    names |= {i["item_id"]: i["name"] for i in doc["items"]}
    keep = {"name", "type", "location", "includes", "excludes", "exclude_regexes", "when"}
    return {
        "vaults": sorted(({k: v[k] for k in keep & v.keys()} for v in doc["vaults"]), key=str),
        "items": sorted(({k: i[k] for k in keep & i.keys()} for i in doc["items"]), key=str),
        "schedules": sorted(
            (names[s["item_id"]], names[s["vault_id"]], s["when"]) for s in doc["schedules"]
        ),
    }


def test_dry_run_shows_exactly_what_import_creates_and_policy_hides_import(
    server: ServerProcess, admin: AdminCli, short_tmp: Path
) -> None:
    home, data, repos = short_tmp / "home", short_tmp / "data", short_tmp / "repos"
    for d in (home / ".config" / "restic", home / ".config" / "borgmatic", data / "a", repos):
        d.mkdir(parents=True)
    (home / "paths.txt").write_text(f"# what restic backs up\n{data}/a\n\n{data}/*.txt\n")
    (data / "notes.txt").write_text("n\n")
    (home / ".config" / "restic" / "home.env").write_text(
        f"RESTIC_REPOSITORY={repos}/restic\nRESTIC_FILES_FROM={home}/paths.txt\n"
    )
    (home / ".config" / "borgmatic" / "config.yaml").write_text(
        f"source_directories:\n    - {data}\nrepositories:\n    - path: {repos}/borg\n"
        "exclude_patterns:\n    - '~/*/.cache'\n"
    )
    root = short_tmp / "agent-home"
    root.mkdir()
    agent = AgentProcess(root, env={"HOME": str(home)})
    agent.start()
    try:
        admin("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        agent.comet(
            "login", "--server", server.url, "--username", "alice", "--password-stdin",
            stdin=ALICE_PASSWORD + "\n",
        )  # fmt: skip
        sources = {s["product"]: s for s in agent.comet("import", "--list", "--json").json()}
        restic, borg = sources["restic-env"]["source_id"], sources["borgmatic"]["source_id"]

        text = agent.comet("import", restic, "--dry-run").stdout
        assert f"include {data}/a, {data}/notes.txt" in text
        assert "nothing was changed (dry run)" in text
        preview = agent.comet("import", restic, "--dry-run", "--json").json()
        borg_preview = agent.comet("import", borg, "--dry-run", "--json").json()
        assert f"{home}/*/.cache" in borg_preview["items"][0]["excludes"]
        assert agent.comet("item", "list", "--json").json() == []  # nothing created

        agent.comet("import", restic)
        created = {
            "vaults": agent.comet("vault", "list", "--json").json(),
            "items": agent.comet("item", "list", "--json").json(),
            "schedules": agent.comet("schedule", "list", "--json").json(),
        }
        assert without_ids(created) == without_ids(preview)
        assert len(created["items"]) == 1 and len(created["schedules"]) == 1
        log = agent.comet("history", "--classification", "import", "--json").json()
        entries = agent.comet("job", "log", log[0]["job_id"], "--json").json()["entries"]
        assert "imported 1 Protected Items, 1 Storage Vaults and 1 schedules" in "\n".join(
            e["message"] for e in entries
        )

        policy = short_tmp / "policy.json"
        policy.write_text(json.dumps({"flags": {"hide_import": True}}))
        admin("policy", "create", "no-import", "--file", str(policy), "--default")
        agent.comet("item", "list")  # refreshes the cached profile and its policy
        for args in (("--list",), (borg, "--dry-run"), (borg,)):
            refused = agent.comet("import", *args, check=False)
            assert refused.returncode != 0, args
            assert "policy 'no-import'" in refused.stderr, refused.stderr
    finally:
        agent.kill()
