"""The audit log shows every state change and refusal with actor, action, target,
source address and result: vault/item/schedule changes, a policy refusal, lock,
unlock and disconnect, and a dispatch to an offline device recorded as failed (the
entry is written after the send). One row checked per action class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fixtures.processes import ALICE_PASSWORD, AdminCli, AgentProcess


def rows(admin: AdminCli, action: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin("audit", "--action", action, "--json").json()
    return found


def one(admin: AdminCli, action: str, *, actor: str, target: str, success: bool = True) -> str:
    (row,) = rows(admin, action)
    assert (row["actor"], row["target"], row["success"]) == (actor, target, success), row
    assert row["source_address"], row
    return str(row["details"])


def test_each_action_class_leaves_one_audit_row(
    admin: AdminCli, alice: AgentProcess, short_tmp: Path
) -> None:
    device = alice.status()["device_id"]
    vault = alice.comet(
        "vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"), "--json"
    ).json()["vault_id"]  # fmt: skip
    assert "'v'" in one(admin, "vault.add", actor="alice", target=vault)
    item = alice.comet(
        "item", "add", "docs", "--type", "files", "--include", str(short_tmp), "--json"
    ).json()["item_id"]  # fmt: skip
    one(admin, "item.add", actor="alice", target=item)
    alice.comet("schedule", "add", "--item", "docs", "--vault", "v", "--daily", "03:00")
    (schedule,) = alice.comet("schedule", "list", "--json").json()
    one(admin, "schedule.add", actor="alice", target=schedule["schedule_id"])
    assert not rows(admin, "profile.save")  # successes are the rows above

    policy = short_tmp / "policy.json"
    policy.write_text(json.dumps({"flags": {"prevent_new_item": True}}))
    admin("policy", "create", "no-new-items", "--file", str(policy), "--default")
    refused = alice.comet(
        "item", "add", "more", "--type", "files", "--include", str(short_tmp), check=False
    )
    assert refused.returncode != 0
    details = one(admin, "profile.save", actor="alice", target=device, success=False)
    assert "prevent_new_item" in details

    alice.comet("lock")
    one(admin, "device.lock", actor="alice", target=device)
    alice.comet("unlock-app", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    one(admin, "device.unlock", actor="alice", target=device)
    alice.comet("disconnect")
    one(admin, "device.disconnect", actor="alice", target=device)

    offline = admin("dispatch", "refetch", "--device", device, check=False)
    assert offline.returncode != 0
    (row,) = [r for r in admin("audit", "--json").json() if r["action"].startswith("dispatch.")]
    assert (row["actor"], row["target"], row["success"]) == ("admin", device, False), row
    assert "not connected" in row["details"] or "offline" in row["details"], row
