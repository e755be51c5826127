"""The console's management features through a plain HTTP client, pages and API:
policies (the CLI's validation, bad input re-rendered, nothing saved), admins and
roles (never oneself, never the last SUPER), device commands beside "back up now"
(to a device stream held by an agent at the network edge), user edits, and the
portal's own-device backup of any item, never another account's device."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from comet.server.admin_policies import read_policy_file
from comet.server.admin_session import AdminCliError
from comet.server.errors import ConflictError
from comet.server.rpc import convert
from comet.server.rpc.live import LiveConnection
from comet.server.store.accounts import Role
from comet.server.store.jobs import JobClassification, JobRecord, JobStatus
from comet.v1 import common_pb2, control_pb2
from tests.server.conftest import auth_key
from tests.server.web.conftest import Web, csrf_of

pytestmark = pytest.mark.timeout(120)


def _key(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _err(reply: httpx.Response) -> str:
    """The refusal a form's redirect carries (``?err=...``), decoded."""
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(reply.headers.get("location", "")).query).get("err", [""])[0]


async def test_policies_are_edited_in_the_console_and_api_with_the_cli_rules(
    web: Web, tmp_path: Path
) -> None:
    await web.add_user("root", Role.SUPER_ADMIN)
    await web.add_user("op", Role.OPERATOR)
    await web.add_user("alice")
    root = await web.signed_in("root")
    token = await csrf_of(root, "/policies")
    form = {"csrf": token, "name": "office", "flag_prevent_delete_vault": "on"}

    # Bad input: the form again with the reason and what was typed; nothing saved.
    bad = {
        "policy JSON is not valid JSON": {**form, "body_json": "{nope"},
        "not a policy": {**form, "body_json": '{"no_such_field": 1}'},
        "a policy needs a name": {**form, "name": " "},
        "storage_quota_bytes": {**form, "storage_quota_bytes": "lots"},
    }
    for reason, data in bad.items():
        page = await root.post("/policies", data=data)
        assert page.status_code == 400 and reason in page.text, (reason, page.text[-2000:])
        assert 'value="office"' in page.text or reason == "a policy needs a name"
    # The CLI's policy file is refused by the very same parser, with the same words.
    (tmp_path / "p.json").write_text('{"no_such_field": 1}')
    with pytest.raises(AdminCliError) as cli:
        read_policy_file(tmp_path / "p.json")
    api_bad = await root.post(
        "/api/v1/policies", json={"name": "x", "no_such_field": 1},
        headers={"x-csrf-token": token},
    )  # fmt: skip
    assert api_bad.json()["error"]["message"] in str(cli.value)
    assert await web.stores.policies.all() == []

    body = {"exclusions": [{"pattern": "*.tmp"}], "enforce_retention": True}
    made = await root.post(
        "/policies",
        data={**form, "storage_quota_bytes": "1000", "body_json": json.dumps(body)},
    )
    assert made.status_code == 303, made.text
    policy_id = made.headers["location"].split("/")[2].split("?")[0]
    stored = (await web.stores.policies.all())[0]
    assert stored.policy_id == policy_id and stored.flag("prevent_delete_vault")
    assert stored.exclusions == [{"pattern": "*.tmp"}]
    assert stored.body["storage_quota_bytes"] == "1000"
    page = await root.get(f"/policies/{policy_id}")
    assert "*.tmp" in page.text and 'value="1000"' in page.text
    assert 'name="version" value="1"' in page.text

    # A save from a stale page is refused, not merged; the fresh one goes through.
    saved = await root.post(
        f"/policies/{policy_id}",
        data={**form, "version": "1", "name": "office 2", "storage_quota_bytes": "1000"},
    )
    assert saved.status_code == 303 and "version+2" in saved.headers["location"]
    stale = await root.post(
        f"/policies/{policy_id}", data={**form, "version": "1", "name": "office 3"}
    )
    assert stale.status_code == 400 and "changed since you read it" in stale.text
    assert (await web.stores.policies.get(policy_id)).name == "office 2"
    assign = await root.post("/users/alice/policy", data={"csrf": token, "policy_id": policy_id})
    assert assign.status_code == 303
    user = await root.get("/users/alice")
    assert "office 2" in user.text and "1000 B" in user.text

    # An OPERATOR reads policies but cannot change them, on the page or the API.
    op = await web.signed_in("op")
    read = await op.get(f"/policies/{policy_id}")
    assert read.status_code == 200 and "Save policy" not in read.text
    op_token = await csrf_of(op, "/policies")
    assert "Create a policy" not in (await op.get("/policies")).text
    refused = await op.post(f"/policies/{policy_id}/delete", data={"csrf": op_token})
    assert "does not allow" in _err(refused)
    op_key = _key(await web.api_key("op", Role.OPERATOR))
    async with web.client() as http:
        denied = await http.post("/api/v1/policies", headers=op_key, json={"name": "x"})
        assert denied.status_code == 403
        root_key = _key(await web.api_key("root", Role.SUPER_ADMIN))
        created = await http.post(
            "/api/v1/policies", headers=root_key,
            json={"name": "lab", "flags": {"prevent_new_item": True}, "max_buckets": 2},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        lab = created.json()
        assert lab["body"]["flags"] == {"prevent_new_item": True}
        clash = await http.put(
            f"/api/v1/policies/{lab['policy_id']}", headers=root_key, json={"name": "office 2"}
        )
        assert clash.status_code == 409 and clash.json()["error"]["code"] == "already_exists"
        gone = await http.delete(f"/api/v1/policies/{lab['policy_id']}", headers=root_key)
        assert gone.status_code == 200 and gone.json()["name"] == "lab"
    deleted = await root.post(f"/policies/{policy_id}/delete", data={"csrf": token})
    assert deleted.status_code == 303 and await web.stores.policies.all() == []

    audit = await web.stores.accounts.list_audit(limit=200)
    seen = {(e.action, e.success) for e in audit if e.actor == "root"}
    assert seen >= {
        ("policy.create", True), ("policy.create", False), ("policy.edit", True),
        ("policy.edit", False), ("policy.delete", True), ("policy.assign", True),
    }  # fmt: skip
    for client in (root, op):
        await client.aclose()


async def test_admins_and_roles(web: Web) -> None:
    await web.add_user("root", Role.SUPER_ADMIN)
    await web.add_user("op", Role.OPERATOR)
    await web.add_user("alice")
    root = await web.signed_in("root")
    page = await root.get("/admins")
    assert page.status_code == 200 and "Add an administrator" in page.text
    assert "op" in page.text and "alice" not in page.text  # admins only
    token = await csrf_of(root, "/admins")

    added = await root.post(
        "/admins",
        data={"csrf": token, "username": "aud2", "password": "aud2-pass-1", "role": "auditor"},
    )
    assert added.headers["location"].startswith("/admins?msg=")
    plain = await root.post(
        "/admins", data={"csrf": token, "username": "u2", "password": "u2-pass-12", "role": "user"}
    )
    assert "super, operator or auditor" in _err(plain)
    promoted = await root.post(
        "/users/op/role", data={"csrf": token, "role": "super", "back": "/admins"}
    )
    assert promoted.headers["location"].startswith("/admins?msg=op+is+now+super")
    assert (await web.stores.directory.user("op")).role is Role.SUPER_ADMIN
    myself = await root.post("/users/root/role", data={"csrf": token, "role": "operator"})
    assert "own role" in _err(myself)
    no_role = await root.post("/users/alice/role", data={"csrf": token})
    assert "choose a role" in _err(no_role)
    reset = await root.post(
        "/users/aud2/password",
        data={"csrf": token, "password": "new-pass-123", "force": "on", "back": "/admins"},
    )
    assert reset.headers["location"].startswith("/admins?msg=password+reset")
    deleted = await root.post("/users/aud2/delete", data={"csrf": token, "back": "/admins"})
    assert deleted.headers["location"].startswith("/admins?msg=")
    edited = await root.post("/users/alice/edit", data={"csrf": token, "max_devices": "3"})
    assert edited.status_code == 303 and (await web.stores.directory.user("alice")).max_devices == 3
    nonsense = await root.post("/users/alice/edit", data={"csrf": token, "max_devices": "-1"})
    assert "whole number" in _err(nonsense)

    # Two SUPER admins demoting each other at once: one of them stays SUPER.
    root_key = _key(await web.api_key("root", Role.SUPER_ADMIN))
    op_key = _key(await web.api_key("op", Role.SUPER_ADMIN))
    async with web.client() as a, web.client() as b:
        replies = await asyncio.gather(
            a.put("/api/v1/users/op/role", headers=root_key, json={"role": "operator"}),
            b.put("/api/v1/users/root/role", headers=op_key, json={"role": "operator"}),
        )
    assert sorted(r.status_code for r in replies) in ([200, 401], [200, 409]), [
        r.text for r in replies
    ]
    supers = [a.username for a in await web.stores.directory.admins() if a.role is Role.SUPER_ADMIN]
    assert len(supers) == 1
    with pytest.raises(ConflictError):
        await web.stores.accounts.set_role(supers[0], Role.AUDITOR)
    with pytest.raises(ConflictError):
        await web.stores.accounts.delete_user(supers[0])

    # Everyone else is refused, on the page and the API; the API lists admins.
    demoted = next(n for n in ("root", "op") if n not in supers)
    other = await web.signed_in(demoted)
    listing = await other.get("/admins")
    assert listing.status_code == 200 and "Add an administrator" not in listing.text
    other_token = await csrf_of(other, "/admins")
    refused = await other.post("/users/alice/role", data={"csrf": other_token, "role": "super"})
    assert "does not allow" in _err(refused)
    key = _key(await web.api_key(demoted, Role.OPERATOR))
    async with web.client() as http:
        listed = (await http.get("/api/v1/admins", headers=key)).json()
        assert {a["username"] for a in listed} == {"root", "op"}
        assert {a["totp_enabled"] for a in listed} == {False}
        denied = await http.put("/api/v1/users/alice/max-devices", headers=key,
                                json={"max_devices": 9})  # fmt: skip
        assert denied.status_code == 403
    audit = await web.stores.accounts.list_audit(limit=200)
    assert {(e.action, e.success) for e in audit} >= {
        ("user.set_role", True), ("user.set_role", False), ("user.edit", True),
        ("user.add", True), ("user.delete", True), ("user.reset_password", True),
    }  # fmt: skip
    for client in (root, other):
        await client.aclose()


class EdgeAgent:
    """A device's live stream at the network edge: records each command and answers
    it as the agent would (a started job, or done for a cancel)."""

    def __init__(self, web: Web, device_id: str) -> None:
        assert web.registry is not None
        self.connection = LiveConnection(device_id=device_id, user_id="")
        web.registry.register(self.connection)
        self.commands: list[control_pb2.Command] = []

    async def run(self) -> None:
        while (message := await self.connection.outbox.get()) is not None:
            command = message.command
            self.commands.append(command)
            reply = control_pb2.CommandReply(request_id=command.request_id)
            if command.HasField("cancel_job"):
                reply.done.SetInParent()
            else:
                reply.job_started.job_id = f"job-{len(self.commands)}"
            self.connection.resolve(reply)


@contextlib.asynccontextmanager
async def edge_agent(web: Web, device_id: str) -> AsyncIterator[EdgeAgent]:
    agent = EdgeAgent(web, device_id)
    await web.stores.accounts.mark_connected(device_id, "test")
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        agent.connection.close()
        await task


async def _device_with_a_program_item(web: Web, name: str) -> tuple[str, str, str]:
    """A user with a device whose scheduled item is a Program item; returns the
    device, item and vault ids."""
    await web.add_user(name)
    user_id = await web.stores.accounts.user_id(name)
    login = await web.stores.accounts.login(name, auth_key(), source="t", admin_session=False)
    vault = common_pb2.StorageVault(name="local", type=common_pb2.VAULT_TYPE_LOCAL)
    vault.local.path = "/srv/backups"
    item = common_pb2.ProtectedItem(
        name="dump", type=common_pb2.ITEM_TYPE_PROGRAM, program_command="pg_dumpall",
        program_save_as="all.sql",
    )  # fmt: skip
    view = await web.stores.profiles.get(user_id, reveal_secrets=True)
    doc = convert.profile_document(common_pb2.Profile(items=[item], vaults=[vault]))
    view = await web.stores.profiles.put(
        user_id, device_id=login.device_id, version=view.version, document=doc
    )
    item_id = view.document["items"][0]["item_id"]
    vault_id = view.document["vaults"][0]["vault_id"]
    schedule = common_pb2.Schedule(
        item_id=item_id, vault_id=vault_id, frequency=common_pb2.SCHEDULE_FREQUENCY_DAILY
    )
    doc = {**view.document, "schedules": [convert.profile_document(
        common_pb2.Profile(schedules=[schedule]))["schedules"][0]]}  # fmt: skip
    await web.stores.profiles.put(
        user_id, device_id=login.device_id, version=view.version, document=doc
    )
    return login.device_id, item_id, vault_id


async def test_device_commands_and_the_portals_own_backup(web: Web) -> None:
    await web.add_user("op", Role.OPERATOR)
    await web.add_user("aud", Role.AUDITOR)
    device, item_id, vault_id = await _device_with_a_program_item(web, "alice")
    bob_device, _, _ = await _device_with_a_program_item(web, "bob")
    op = await web.signed_in("op")
    alice = await web.signed_in("alice")
    async with edge_agent(web, device) as agent, edge_agent(web, bob_device) as bob_agent:
        page = await op.get("/devices")
        for label in ("Back up now", "Run retention", "Verify", "Cancel running job"):
            assert label in page.text
        assert "Run retention" in (await op.get("/users/alice")).text
        token = await csrf_of(op, "/devices")
        retention = await op.post(f"/devices/{device}/retention", data={"csrf": token})
        assert retention.headers["location"].startswith("/jobs/job-1?msg=retention+started")
        verify = await op.post(f"/devices/{device}/verify", data={"csrf": token, "read_data": "on"})
        assert verify.headers["location"].startswith("/jobs/job-2")
        nothing = await op.post(f"/devices/{device}/cancel", data={"csrf": token})
        assert "no job is running" in _err(nothing)
        running = JobRecord(
            job_id="running-1", classification=JobClassification.BACKUP,
            status=JobStatus.RUNNING, started_at=web.clock.now(),
        )  # fmt: skip
        alice_id = await web.stores.accounts.user_id("alice")
        await web.stores.jobs.report(user_id=alice_id, device_id=device, job=running, log=[])
        cancel = await op.post(f"/devices/{device}/cancel", data={"csrf": token})
        assert "running-1" in cancel.headers["location"], cancel.headers
        # The Program item stays a SUPER's to start: an OPERATOR is refused, unsent.
        program = await op.post(f"/devices/{device}/backup", data={"csrf": token})
        assert "command.run_program" in _err(program)
        assert [c.WhichOneof("action") for c in agent.commands] == [
            "apply_retention", "verify", "cancel_job",
        ]  # fmt: skip
        assert agent.commands[0].apply_retention.vault_id == vault_id
        assert agent.commands[1].verify.read_data and agent.commands[2].cancel_job.job_id

        # An AUDITOR may not send commands at all.
        aud = await web.signed_in("aud")
        aud_token = await csrf_of(aud, "/devices")
        assert "Run retention" not in (await aud.get("/devices")).text
        for action in ("retention", "verify", "cancel"):
            refused = await aud.post(f"/devices/{device}/{action}", data={"csrf": aud_token})
            assert "does not allow" in _err(refused), action
        async with web.client() as http:
            key = _key(await web.api_key("aud", Role.AUDITOR))
            api = await http.post(f"/api/v1/devices/{device}/verify", headers=key, json={})
            assert api.status_code == 403
            op_key = _key(await web.api_key("op", Role.OPERATOR))
            wrong_vault = await http.post(
                f"/api/v1/devices/{device}/retention", headers=op_key, json={"vault_id": "x"}
            )
            assert wrong_vault.status_code == 400
            started = await http.post(
                f"/api/v1/devices/{device}/verify", headers=op_key, json={"vault_id": vault_id}
            )
            assert started.status_code == 202 and started.json()["job_id"] == "job-4"

        # The owner backs up their own device, its Program item included.
        portal = await csrf_of(alice, "/portal")
        own = await alice.post(f"/portal/devices/{device}/backup", data={"csrf": portal})
        assert own.headers["location"].startswith("/portal/jobs/job-5"), own.headers
        assert agent.commands[-1].run_backup.item_id == item_id
        api_own = await alice.post(
            f"/api/v1/me/devices/{device}/backup", headers={"x-csrf-token": portal}
        )
        assert api_own.status_code == 202 and api_own.json()["job_id"] == "job-6"
        # ...and never another account's device, which does not exist for them.
        theirs = await alice.post(f"/portal/devices/{bob_device}/backup", data={"csrf": portal})
        assert "no device" in _err(theirs)
        api_theirs = await alice.post(
            f"/api/v1/me/devices/{bob_device}/backup", headers={"x-csrf-token": portal}
        )
        assert api_theirs.status_code == 404
        assert bob_agent.commands == []
    own_audit = await web.stores.accounts.list_audit(action="own.run_backup", limit=10)
    assert sorted((e.target == device, e.success) for e in own_audit) == [
        (False, False), (False, False), (True, True), (True, True),
    ]  # fmt: skip
    for client in (op, alice, aud):
        await client.aclose()


async def test_every_new_page_route_refuses_the_wrong_callers(web: Web) -> None:
    """Each console route added here, as a plain user and as an AUDITOR (the API
    routes are in test_http_roles.py's matrix)."""
    from comet.server.authorization import HTTP_ACTIONS, PERMISSIONS, Caller

    await web.add_user("aud", Role.AUDITOR)
    await web.add_user("alice")
    routes = [
        "POST /policies", "GET /policies/{policy_id}", "POST /policies/{policy_id}",
        "POST /policies/{policy_id}/delete", "GET /admins", "POST /admins",
        "POST /users/{username}/role", "POST /users/{username}/edit",
        "POST /devices/{device_id}/retention", "POST /devices/{device_id}/verify",
    ]  # fmt: skip
    nobody = "00000000-0000-0000-0000-000000000000"
    for who, caller, home in (
        ("aud", Caller.AUDITOR, "/dashboard"),
        ("alice", Caller.USER, "/portal"),
    ):
        client = await web.signed_in(who)
        token = await csrf_of(client, home)
        for route in routes:
            method, template = route.split(" ", 1)
            path = re.sub(r"{(\w+)}", lambda m: "alice" if m.group(1) == "username" else nobody,
                          template)  # fmt: skip
            reply = await client.request(method, path, data={"csrf": token})
            allowed = caller in PERMISSIONS[HTTP_ACTIONS[route]]
            refused = reply.status_code == 403 or any(
                why in _err(reply) for why in ("does not allow", "administrator session")
            )
            assert refused != allowed, (who, route, reply.status_code, reply.headers)
        await client.aclose()
    anonymous = web.client()
    for route in routes:
        method, template = route.split(" ", 1)
        reply = await anonymous.request(method, template.replace("{", "").replace("}", ""))
        assert reply.status_code == 303 and reply.headers["location"].startswith("/signin")
    await anonymous.aclose()
