"""The console's pages through a plain HTTP client: sign-in with password and
two-factor under the login throttle, cookie and header security, CSRF on forms, the
idle timeout, role refusals, and the customer portal's isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from comet.server import totp
from comet.server.store.accounts import Role
from comet.server.store.jobs import JobClassification, JobProgress, JobRecord, JobStatus
from tests.server.conftest import auth_key
from tests.server.web.conftest import CSRF_RE, Web, csrf_of


async def _signin(web: Web, name: str, password: str, code: str = "") -> str:
    """Posts the sign-in form; returns where it sends the browser."""
    async with web.client() as http:
        form = await http.get("/signin")
        nonce = CSRF_RE.search(form.text)
        assert nonce
        reply = await http.post(
            "/signin",
            data={"csrf": nonce.group(1), "username": name, "password": password, "totp": code},
        )
        assert reply.status_code == 303
        return reply.headers["location"]


async def test_signin_two_factor_and_the_login_throttle(web: Web) -> None:
    await web.add_user("root", Role.SUPER_ADMIN)
    root = await web.stores.accounts.user_id("root")
    enrolment = await web.stores.accounts.begin_totp_enrolment(root)
    await web.stores.accounts.confirm_totp_enrolment(
        root, totp.code_at(enrolment.secret, web.clock.now())
    )
    web.clock.advance(seconds=60)
    assert "two-factor" in await _signin(web, "root", "password-1")
    ok = totp.code_at(enrolment.secret, web.clock.now())
    assert await _signin(web, "root", "password-1", ok) == "/"
    # Wrong passwords count like gRPC logins: after three, the source must wait.
    for _ in range(3):
        assert "wrong+username+or+password" in await _signin(web, "root", "not-it-1")
    # Checked before the password and the code: even the right ones wait.
    assert "too+many+failed+attempts" in await _signin(web, "root", "password-1", ok)
    throttled = await web.stores.accounts.list_audit(action="login.throttled", limit=5)
    assert throttled and throttled[0].source_address == "127.0.0.1"


async def test_cookies_headers_csrf_and_idle_timeout(web: Web) -> None:
    await web.add_user("root", Role.SUPER_ADMIN)
    client = await web.signed_in("root")
    cookie = next(c for c in client.cookies.jar if c.name == "comet_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") in ("strict", "Strict")
    page = await client.get("/dashboard")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script anywhere
    assert page.headers["x-frame-options"] == "DENY"
    # A forged form (no CSRF token, or another session's) changes nothing.
    forged = await client.post("/users", data={"username": "mallory", "password": "x" * 10})
    assert forged.status_code == 303 and "CSRF" in forged.headers["location"]
    other = await web.signed_in("root")
    stolen = await csrf_of(other, "/users")
    forged = await client.post(
        "/users", data={"csrf": stolen, "username": "mallory", "password": "x" * 10}
    )
    assert "CSRF" in forged.headers["location"]
    assert "mallory" not in {u.username for u in await web.stores.accounts.list_users()}
    token = await csrf_of(client, "/users")
    made = await client.post(
        "/users", data={"csrf": token, "username": "carol", "password": "carol-pass-1"}
    )
    assert made.headers["location"].startswith("/users/carol")
    # Idle for longer than 30 minutes: signed out, and the session is gone server-side.
    web.clock.advance(minutes=31)
    expired = await client.get("/dashboard")
    assert expired.status_code == 303 and "idle" in expired.headers["location"]
    await client.aclose()
    await other.aclose()


async def test_roles_on_pages_and_the_customer_portal(web: Web) -> None:
    await web.add_user("op", Role.OPERATOR)
    await web.add_user("alice")
    await web.add_user("bob")
    for name in ("alice", "bob"):
        await web.stores.accounts.login(name, auth_key(), source="t", admin_session=False)
    operator = await web.signed_in("op")
    users = await operator.get("/users")
    assert users.status_code == 200 and "Add a user" not in users.text  # SUPER only
    token = await csrf_of(operator, "/users")
    refused = await operator.post(
        "/users", data={"csrf": token, "username": "eve", "password": "eve-pass-12"}
    )
    assert "does+not+allow" in refused.headers["location"]
    assert (await operator.get("/audit")).status_code == 403
    for path in ("/policies", "/buckets", "/server", "/jobs", "/devices", "/api-keys"):
        assert (await operator.get(path)).status_code == 200, path
    denied = await web.stores.accounts.list_audit(action="authorization.denied", limit=5)
    assert {(e.actor, e.target) for e in denied} >= {("op", "POST /users"), ("op", "GET /audit")}

    alice = await web.signed_in("alice")
    home = await alice.get("/", follow_redirects=True)
    assert str(home.url).endswith("/portal") and home.status_code == 200
    assert "alice" in home.text and "bob" not in home.text
    mine = (await alice.get("/api/v1/me/devices")).json()
    assert {d["username"] for d in mine["items"]} == {"alice"}
    assert (await alice.get("/users")).status_code == 403
    assert (await alice.get("/api/v1/devices")).status_code == 401
    bob_device = (await web.stores.accounts.list_devices(username="bob"))[0].device_id
    token = await csrf_of(alice, "/portal")
    other = await alice.post(
        f"/api/v1/me/devices/{bob_device}/backup", headers={"x-csrf-token": token}
    )
    assert other.status_code == 404, other.text  # someone else's device does not exist for alice
    no_csrf = await alice.post(f"/api/v1/me/devices/{bob_device}/backup")
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]["message"]
    for client in (operator, alice):
        await client.aclose()


async def test_live_job_progress_over_server_sent_events(web: Web) -> None:
    await web.add_user("op", Role.OPERATOR)
    await web.add_user("alice")
    alice_id = await web.stores.accounts.user_id("alice")
    device = (
        await web.stores.accounts.login("alice", auth_key(), source="t", admin_session=False)
    ).device_id
    running = JobRecord(
        job_id="live-1", classification=JobClassification.BACKUP, status=JobStatus.RUNNING,
        started_at=web.clock.now(), progress=JobProgress(counter=1, bytes_done=10, bytes_total=40),
    )  # fmt: skip
    await web.stores.jobs.report(user_id=alice_id, device_id=device, job=running, log=[])
    operator = await web.signed_in("op")
    page = await operator.get("/jobs/live-1")
    assert 'data-job-events="/jobs/live-1/events"' in page.text

    async def finish() -> None:
        await asyncio.sleep(0.3)
        progressed = dataclasses.replace(
            running, progress=JobProgress(counter=2, bytes_done=30, bytes_total=40)
        )
        await web.stores.jobs.report(user_id=alice_id, device_id=device, job=progressed, log=[])
        await web.stores.jobs.flush_progress()
        await asyncio.sleep(0.3)
        done = dataclasses.replace(progressed, status=JobStatus.SUCCESS, ended_at=web.clock.now())
        await web.stores.jobs.report(
            user_id=alice_id, device_id=device, job=done, log=[], final=True
        )

    finishing = asyncio.create_task(finish())
    stream = await operator.get("/jobs/live-1/events")
    await finishing
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[0].removeprefix("event: "), block.split("\n")[1].removeprefix("data: "))
        for block in stream.text.strip().split("\n\n")
    ]
    jobs = [json.loads(data) for name, data in events if name == "job"]
    assert [j["progress"]["bytes_done"] for j in jobs][:2] == [10, 30]
    assert jobs[-1]["status"] == "SUCCESS" and events[-1][0] == "end"
    # The portal streams only the user's own jobs.
    alice = await web.signed_in("alice")
    assert (await alice.get("/portal/jobs/live-1/events")).status_code == 200
    await web.add_user("bob")
    bob = await web.signed_in("bob")
    assert (await bob.get("/portal/jobs/live-1/events")).status_code == 404
    for client in (operator, alice, bob):
        await client.aclose()
