"""The HTTP JSON API with a plain HTTP client and API keys: users, devices, jobs
(filters, log, CSV), keys, the OpenAPI document and the JSON errors."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

from comet.server import totp
from comet.server.authorization import HTTP_ACTIONS
from comet.server.store.accounts import Role
from comet.server.store.jobs import JobClassification, JobRecord, JobStatus, LogLine, Severity
from comet.server.web.api import PREFIX
from tests.server.conftest import auth_key
from tests.server.web.conftest import Web


def _key(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_users_search_pages_and_json_errors(web: Web) -> None:
    await web.add_user("root", Role.SUPER_ADMIN)
    for i in range(12):
        await web.add_user(f"user{i:02d}")
    root = _key(await web.api_key("root", Role.SUPER_ADMIN))
    async with web.client() as http:
        first = (await http.get("/api/v1/users?per_page=5", headers=root)).json()
        assert (first["total"], first["pages"], len(first["items"])) == (13, 3, 5)
        third = (await http.get("/api/v1/users?per_page=5&page=3", headers=root)).json()
        assert [u["username"] for u in third["items"]] == ["user09", "user10", "user11"]
        found = (await http.get("/api/v1/users?q=user1", headers=root)).json()
        assert sorted(u["username"] for u in found["items"]) == ["user10", "user11"]
        assert found["items"][0]["role"] == "user"

        created = await http.post(
            "/api/v1/users",
            headers=root,
            json={"username": "bob", "password": "bob-password", "role": "operator"},
        )
        assert created.status_code == 201 and created.json()["role"] == "operator"
        again = await http.post(
            "/api/v1/users", headers=root, json={"username": "bob", "password": "bob-password"}
        )
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "already_exists"
        missing = await http.get("/api/v1/users/nobody", headers=root)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        bad = await http.post("/api/v1/users", headers=root, content=b"{not json")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
        short = await http.post(
            "/api/v1/users", headers=root, json={"username": "x", "password": "short"}
        )
        assert short.status_code == 400 and "8 characters" in short.json()["error"]["message"]

        user00 = await web.stores.accounts.user_id("user00")
        enrolment = await web.stores.accounts.begin_totp_enrolment(user00)
        await web.stores.accounts.confirm_totp_enrolment(
            user00, totp.code_at(enrolment.secret, web.clock.now())
        )
        reset = await http.post("/api/v1/users/user00/totp-reset", headers=root)
        assert reset.json() == {"was_enabled": True}
        detail = (await http.get("/api/v1/users/user00", headers=root)).json()
        assert detail["user"]["totp_enabled"] is False

        detail = (await http.get("/api/v1/users/bob", headers=root)).json()
        assert detail["user"]["username"] == "bob" and detail["devices"] == []
        deleted = await http.delete("/api/v1/users/bob", headers=root)
        assert deleted.status_code == 200
        assert (await http.get("/api/v1/users/bob", headers=root)).status_code == 404
        self_delete = await http.delete("/api/v1/users/root", headers=root)
        assert self_delete.status_code == 400
    actions = {
        e.action for e in await web.stores.accounts.list_audit(limit=50) if e.actor == "root"
    }
    assert {"user.add", "user.delete", "user.reset_totp"} <= actions


async def test_jobs_filters_log_csv_and_devices(web: Web) -> None:
    await web.add_user("aud", Role.AUDITOR)
    await web.add_user("alice")
    alice = await web.stores.accounts.user_id("alice")
    login = await web.stores.accounts.login("alice", auth_key(), source="t", admin_session=False)
    device = login.device_id
    now = web.clock.now()
    for i, status in enumerate((JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.SUCCESS)):
        await web.stores.jobs.report(
            user_id=alice,
            device_id=device,
            job=JobRecord(
                job_id=f"job-{i}", classification=JobClassification.BACKUP, status=status,
                started_at=now - timedelta(hours=3 - i), ended_at=now - timedelta(hours=2 - i),
                item_id="item-1", vault_id="vault-1",
            ),
            log=[LogLine(1, now, Severity.INFO, f"line of job {i}")],
            final=True,
        )  # fmt: skip
    aud = _key(await web.api_key("aud", Role.AUDITOR))
    async with web.client() as http:
        everything = (await http.get("/api/v1/jobs", headers=aud)).json()
        assert [j["job_id"] for j in everything["jobs"]] == ["job-2", "job-1", "job-0"]
        failed = (await http.get("/api/v1/jobs?status=ERROR&user=alice", headers=aud)).json()
        assert [j["job_id"] for j in failed["jobs"]] == ["job-1"]
        paged = (await http.get("/api/v1/jobs?limit=2", headers=aud)).json()
        rest = (
            await http.get(f"/api/v1/jobs?limit=2&page={paged['next_page_token']}", headers=aud)
        ).json()
        assert [j["job_id"] for j in rest["jobs"]] == ["job-0"]
        unknown = await http.get("/api/v1/jobs?status=NOPE", headers=aud)
        assert unknown.status_code == 400
        log = (await http.get("/api/v1/jobs/job-1", headers=aud)).json()
        assert log["job"]["status"] == "ERROR"
        assert [x["message"] for x in log["log"]] == ["line of job 1"]
        exported = await http.get("/api/v1/jobs.csv?status=SUCCESS", headers=aud)
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["job_id"] for r in rows] == ["job-2", "job-0"]
        devices = (await http.get("/api/v1/devices", headers=aud)).json()
        assert [d["device_id"] for d in devices["items"]] == [device]
        assert devices["items"][0]["online"] is False
        none_online = (await http.get("/api/v1/devices?online=online", headers=aud)).json()
        assert none_online["items"] == []
        offline = (await http.get("/api/v1/devices?online=offline", headers=aud)).json()
        assert [d["device_id"] for d in offline["items"]] == [device]  # never seen counts
        await web.stores.accounts.mark_connected(device, "test")
        online = (await http.get("/api/v1/devices?online=online&q=ALI", headers=aud)).json()
        assert [d["device_id"] for d in online["items"]] == [device] and online["total"] == 1
        wildcard = (await http.get("/api/v1/devices?q=%25", headers=aud)).json()
        assert wildcard["items"] == []  # a literal %, not a wildcard
        counts = (await http.get("/api/v1/dashboard", headers=aud)).json()
        assert (counts["devices_online"], counts["devices_offline"]) == (1, 0)
        await web.stores.accounts.mark_disconnected(device, "test")
        dashboard = (await http.get("/api/v1/dashboard", headers=aud)).json()
        assert dashboard["jobs_24h"] == {"SUCCESS": 2, "ERROR": 1}
        assert dashboard["devices_offline"] == 1
        assert [a["reason"] for a in dashboard["attention"]] == []  # latest backup succeeded
        await web.stores.jobs.report(
            user_id=alice, device_id=device, log=[], final=True,
            job=JobRecord(
                job_id="job-3", classification=JobClassification.BACKUP,
                status=JobStatus.QUOTA_EXCEEDED, started_at=now, ended_at=now,
            ),
        )  # fmt: skip
        attention = (await http.get("/api/v1/dashboard", headers=aud)).json()["attention"]
        assert [(a["device_id"], a["reason"]) for a in attention] == [
            (device, "failed: QUOTA_EXCEEDED")
        ]
        user = (await http.get("/api/v1/users/alice", headers=aud)).json()
        assert [j["job_id"] for j in user["jobs"]] == ["job-3", "job-2", "job-1", "job-0"]
        server = (await http.get("/api/v1/server", headers=aud)).json()
        assert server["database"]["schema_revision"]


async def test_api_keys_roles_revocation_and_backup_to_an_offline_device(web: Web) -> None:
    await web.add_user("root", Role.SUPER_ADMIN)
    await web.add_user("op", Role.OPERATOR)
    op = _key(await web.api_key("op", Role.OPERATOR))
    async with web.client() as http:
        refused = await http.post(
            "/api/v1/api-keys", headers=op, json={"name": "too much", "role": "super"}
        )
        assert refused.status_code == 403
        made = await http.post("/api/v1/api-keys", headers=op, json={"name": "monitoring"})
        assert made.status_code == 201
        key, info = made.json()["key"], made.json()["info"]
        assert key.startswith("cmk_") and info["role"] == "operator"
        listed = (await http.get("/api/v1/api-keys", headers=op)).json()
        assert key not in str(listed) and {k["name"] for k in listed} == {"test", "monitoring"}
        assert (await http.get("/api/v1/devices", headers=_key(key))).status_code == 200
        # An OPERATOR may not revoke devices (SUPER only), nor read the audit log.
        nobody = str(uuid.UUID(int=0))
        denied = await http.post(f"/api/v1/devices/{nobody}/revoke", headers=_key(key))
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "permission_denied"
        offline = await http.post(f"/api/v1/devices/{nobody}/backup", headers=_key(key))
        assert offline.status_code == 404
        gone = await http.delete(f"/api/v1/api-keys/{info['key_id']}", headers=op)
        assert gone.status_code == 200 and gone.json()["revoked"] is True
        after = await http.get("/api/v1/devices", headers=_key(key))
        assert after.status_code == 401 and after.json()["error"]["code"] == "unknown_credential"
    # A key whose owner lost the role stops working.
    root_key = _key(await web.api_key("root", Role.SUPER_ADMIN))
    async with web.client() as http:
        await http.delete("/api/v1/users/op", headers=root_key)
        assert (await http.get("/api/v1/devices", headers=op)).status_code == 401


async def test_openapi_document_lists_every_api_route(web: Web) -> None:
    async with web.client() as http:
        doc = (await http.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    listed = {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops}
    served = {k for k in HTTP_ACTIONS if k.split(" ")[1].startswith(PREFIX)}
    assert listed == served - {"GET /api/v1/openapi.json"}
    users = doc["paths"]["/api/v1/users"]["get"]
    assert users["x-comet-action"] == "admin.user.list" and users["security"]
