"""comet-admin's job, policy, password and dispatch commands against an in-process
server (the CLI runs in a worker thread with its blocking gRPC client)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server import admin_cli
from comet.server.errors import UnknownCredentialError
from comet.server.store.accounts import Role
from comet.v1 import common_pb2, control_pb2
from tests.server.conftest import PASSWORD, RpcServer


class Cli:
    def __init__(
        self, rpc: RpcServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.rpc, self.capsys, self.monkeypatch = rpc, capsys, monkeypatch

    async def __call__(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        code = await asyncio.to_thread(admin_cli.main, list(args))
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *args: str) -> Any:
        code, out, err = await self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
async def cli(
    rpc: RpcServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Cli:
    monkeypatch.setenv("COMET_ADMIN_CONFIG", str(tmp_path / "admin.json"))
    # comet-admin refuses an account below the KDF floor, so root is made at the floor.
    kdf = KdfParams.new()
    auth_key = derive_login_secrets(PASSWORD, kdf).auth_key
    await rpc.stores.accounts.create_user("root", kdf, auth_key, role=Role.SUPER_ADMIN)
    run = Cli(rpc, capsys, monkeypatch)
    code, _, err = await run(
        "login",
        "--server",
        f"http://{rpc.target}/",
        "--username",
        "root",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    return run


async def test_jobs_and_job_log(cli: Cli, rpc: RpcServer) -> None:
    await rpc.add_user("alice")
    alice = await rpc.device("alice")
    job = common_pb2.Job(
        job_id="job-1",
        item_id="item-1",
        vault_id="vault-1",
        classification=common_pb2.JOB_CLASSIFICATION_BACKUP,
        status=common_pb2.JOB_STATUS_SUCCESS,
        snapshot_id="snap-1",
        counters=common_pb2.JobCounters(files=3, bytes=300, uploaded_bytes=120),
    )
    job.started_at.FromJsonString("2026-01-05T08:00:00Z")
    job.ended_at.FromJsonString("2026-01-05T08:01:00Z")
    await rpc.agent.ReportJob(
        control_pb2.JobReport(
            job=job, log=[common_pb2.LogEntry(seq=1, message="done", severity=2)]
        ),
        metadata=alice.metadata,
    )
    [row] = await cli.json(
        "jobs", "--user", "alice", "--status", "success", "--classification", "backup"
    )
    assert row == {
        "job_id": "job-1",
        "user": "alice",
        "device_id": alice.device_id,
        "classification": "backup",
        "classification_code": 4001,
        "status": "success",
        "status_code": 5000,
        "item_id": "item-1",
        "vault_id": "vault-1",
        "snapshot_id": "snap-1",
        "started_at": "2026-01-05T08:00:00Z",
        "ended_at": "2026-01-05T08:01:00Z",
        "files": 3,
        "directories": 0,
        "bytes": 300,
        "uploaded_bytes": 120,
        "downloaded_bytes": 0,
        "client_version": "",
        "error_message": "",
        "error": None,
        "abandoned_by": None,
    }
    assert await cli.json("jobs", "--status", "7002") == []
    assert await cli.json("jobs", "--since", "2026-01-05T08:30:00Z") == []
    code, _, err = await cli("jobs", "--status", "bogus")
    assert code == 1 and "unknown status 'bogus'" in err
    [line] = await cli.json("job", "log", "job-1")
    assert line["message"] == "done" and line["severity"] == "I" and line["seq"] == 1


async def test_policy_commands(cli: Cli, rpc: RpcServer, tmp_path: Path) -> None:
    await rpc.add_user("alice")
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(
        json.dumps({"flags": {"prevent_delete_vault": True}, "exclusions": [{"pattern": "*.tmp"}]})
    )
    code, out, err = await cli("policy", "create", "strict", "--file", str(policy_file))
    assert code == 0, err
    policy_id = out.strip()
    [listed] = await cli.json("policy", "list")
    assert listed["policy_id"] == policy_id and listed["version"] == 1
    assert listed["policy"]["flags"] == {"prevent_delete_vault": True}

    policy_file.write_text(json.dumps({"flags": {"hide_import": True}}))
    code, _, err = await cli("policy", "edit", policy_id, "--file", str(policy_file))
    assert code == 0, err
    assert (await cli.json("policy", "list"))[0]["policy"]["flags"] == {"hide_import": True}

    assert (await cli("policy", "assign", "alice", policy_id))[0] == 0
    users = await cli.json("user", "list")
    assert {u["username"] for u in users} == {"root", "alice"}
    assert (await cli("policy", "assign", "alice", "--none"))[0] == 0
    assert (await cli("policy", "delete", policy_id))[0] == 0
    code, _, err = await cli("policy", "delete", policy_id)
    assert code == 1 and err.startswith("comet-admin: error: no policy")


async def test_reset_password_and_dispatch_to_an_offline_device(cli: Cli, rpc: RpcServer) -> None:
    await rpc.add_user("alice")
    code, _, err = await cli(
        "user", "reset-password", "alice", "--password-stdin", stdin="brand-new-password\n"
    )
    assert code == 1 and "has not allowed administrators" in err
    code, out, err = await cli(
        "user",
        "reset-password",
        "alice",
        "--password-stdin",
        "--force",
        "--json",
        stdin="brand-new-password\n",
    )
    assert code == 0, err
    assert json.loads(out) == {"username": "alice", "old_backups_readable": False}

    code, _, err = await cli(
        "dispatch",
        "backup",
        "--device",
        "dev-42",
        "--item",
        "i",
        "--vault",
        "v",
        "--wait",
        "--json",
    )
    assert code == 1 and "no device named 'dev-42'" in err and "device list" in err
    code, _, err = await cli(
        "dispatch", "restore", "--device", "dev-42", "--vault", "v", "--snapshot", "latest"
    )
    assert code == 1 and "--to DIR" in err


async def test_api_key_commands(cli: Cli, rpc: RpcServer) -> None:
    made = await cli.json("api-key", "create", "monitoring", "--role", "auditor")
    assert made["key"].startswith("cmk_") and made["role"] == "auditor"
    principal = await rpc.stores.api_keys.authenticate(made["key"])
    assert (principal.username, principal.role) == ("root", Role.AUDITOR)
    listed = await cli.json("api-key", "list")
    assert [(k["name"], k["role"], k["revoked"]) for k in listed] == [
        ("monitoring", "auditor", False)
    ]
    assert made["key"] not in json.dumps(listed)
    code, out, err = await cli("api-key", "revoke", made["key_id"])
    assert code == 0 and "revoked" in out, err
    with pytest.raises(UnknownCredentialError):
        await rpc.stores.api_keys.authenticate(made["key"])
    code, _, err = await cli("api-key", "revoke", "00000000-0000-0000-0000-000000000000")
    assert code == 1 and "no API key" in err
    audit = await rpc.stores.accounts.list_audit(limit=10)
    assert {"api_key.create", "api_key.revoke"} <= {e.action for e in audit}
