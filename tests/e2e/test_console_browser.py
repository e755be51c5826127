"""The web console in a real browser: Debian's chromium driven by Playwright (never a
downloaded browser) against a real ``comet-server serve --web-listen`` process on the
test PostgreSQL, with real ``comet-agent`` devices logged in over gRPC.

One flow, one server: the admin signs in and adds users; alice's device comes online
on the devices page without a reload (the list re-reads itself); "Back up now" starts
a job whose progress reaches success over Server-Sent Events, again without a
reload; the admin opens its log, filters the history by device and status, and
revokes the device. Alice then signs in to the customer portal and sees her own
device and job but nothing of bob's; an OPERATOR has no control for a SUPER-only
action and a post of it anyway is refused; a forged post without the CSRF token is
refused.

With COMET_CONSOLE_SCREENSHOTS=DIR set, every page visited is saved there as
``console-<name>.png`` (the dashboard and devices also at phone width, 390x844);
docs/images/console-*.png were made so."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import BIN, AgentProcess, ServerProcess, free_port

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "console-admin-1"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# alice's data, uploaded at this many bytes a second: a job of a few seconds, long
# enough to be watched live.
DATA_BYTES = 3 * 1024 * 1024
BANDWIDTH = 1024 * 1024

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@dataclass
class Console:
    url: str  # the web console
    server: ServerProcess  # its gRPC side, for the agents


@pytest.fixture
def console(postgres_cluster: PostgresCluster, short_tmp: Path) -> Iterator[Console]:
    root = short_tmp / "server"
    root.mkdir()
    database = postgres_cluster.fresh_database()
    subprocess.run(
        [str(BIN / "comet-server"), "add-admin", "admin", "--password-stdin",
         "--data-dir", str(root), "--database-url", database],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    web_port = free_port()
    server = ServerProcess(
        root, database, free_port(), extra_args=("--web-listen", f"127.0.0.1:{web_port}")
    )
    server.start()
    try:
        yield Console(f"http://127.0.0.1:{web_port}", server)
    finally:
        server.kill()


def _log_in(agent: AgentProcess, server: ServerProcess, user: str, password: str) -> None:
    """Logs the agent in as ``user`` on a device named ``<user>-laptop``, with a local
    vault 'v' and a Protected Item 'docs' of ``<agent root>/data``."""
    agent.comet(
        "login", "--server", server.url, "--username", user, "--password-stdin",
        "--device-name", f"{user}-laptop", stdin=password + "\n",
    )  # fmt: skip
    agent.comet("vault", "add", "v", "--type", "local", "--path", str(agent.root / "vault"))
    agent.comet("item", "add", "docs", "--type", "files", "--include", str(agent.root / "data"))


def _shot(page: Any, name: str, *, phone: bool = False) -> None:
    folder = os.environ.get("COMET_CONSOLE_SCREENSHOTS")
    if not folder:
        return
    page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)
    if phone:
        page.set_viewport_size(PHONE)
        page.screenshot(path=str(Path(folder) / f"console-{name}-phone.png"), full_page=True)
        wide = page.evaluate(
            """() => [document.documentElement, ...document.querySelectorAll(".card")]
                .filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.className)"""
        )
        assert not wide, f"{name} overflows a phone's width: {wide}"
        page.set_viewport_size(DESKTOP)


def _sign_in(page: Any, base: str, user: str, password: str, home: str) -> None:
    from playwright.sync_api import expect

    page.goto(base + "/signin")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(base + home)


def _sign_out(page: Any, base: str) -> None:
    from playwright.sync_api import expect

    page.click("form.signout button")
    expect(page).to_have_url(re.compile(re.escape(base) + r"/signin"))


def _add_user(page: Any, name: str, password: str, role: str = "user") -> None:
    from playwright.sync_api import expect

    page.click("nav >> text=Users")
    page.fill("form.grid input[name=username]", name)
    page.fill("form.grid input[name=password]", password)
    page.select_option("form.grid select[name=role]", role)
    page.click("form.grid button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text(f"user {name} added")


def _mark(page: Any) -> None:
    """A mark on the window: still there later means the page was not reloaded."""
    page.evaluate("window.cometNoReload = true")


def _not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.cometNoReload === true"))


def test_console_flow_with_real_devices(console: Console, short_tmp: Path) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is needed: deploy/bootstrap --dev installs it"
    from playwright.sync_api import expect, sync_playwright

    base = console.url
    for user in ("alice", "bob"):
        (short_tmp / user / "data").mkdir(parents=True)
    (short_tmp / "alice" / "data" / "photos.bin").write_bytes(os.urandom(DATA_BYTES))
    (short_tmp / "bob" / "data" / "bob-notes.txt").write_text("bob's notes\n")
    # Both agents start while the browser does (each start is a Python process).
    alice, bob = AgentProcess(short_tmp / "alice"), AgentProcess(short_tmp / "bob")
    starting = [threading.Thread(target=agent.start) for agent in (alice, bob)]
    for thread in starting:
        thread.start()
    bob_done: dict[str, Any] = {}

    def bob_backs_up() -> None:
        # Meanwhile, bob's device backs up on its own: data alice must never see.
        try:
            starting[1].join()
            _log_in(bob, console.server, "bob", "bob-password")
            bob_done["job"] = bob.comet("backup", "docs", "--vault", "v", "--wait", "--json")
            bob_done["device"] = bob_done["job"].json()["device_id"]
        except BaseException as e:  # reported in the test's thread
            bob_done["error"] = e

    profile = tempfile.mkdtemp(prefix="comet-chromium-")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                viewport=DESKTOP,
            )  # fmt: skip
            page = browser.new_page()
            # Real servers and agents on a shared machine: slower than Playwright's 5 s.
            expect.set_options(timeout=20_000)
            page.set_default_timeout(30_000)
            page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm's confirm()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            # --- the admin signs in and adds the users
            page.goto(base + "/")
            expect(page).to_have_url(base + "/signin")
            _shot(page, "signin")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(base + "/dashboard")
            expect(page.locator("h1")).to_have_text("Dashboard")
            expect(page.locator(".tile").first).to_contain_text("devices online")
            _add_user(page, "bob", "bob-password")
            bob_thread = threading.Thread(target=bob_backs_up)
            bob_thread.start()
            _add_user(page, "alice", "alice-password")
            expect(page.locator("h1")).to_contain_text("alice")
            _add_user(page, "oscar", "oscar-password", role="operator")

            # --- alice's device comes online while the admin looks at the devices page
            page.click("nav >> text=Devices")
            expect(page.locator("h1")).to_have_text("Devices")
            _mark(page)
            starting[0].join()
            _log_in(alice, console.server, "alice", "alice-password")
            alice_row = page.locator("#device-list tr", has_text="alice-laptop")
            expect(alice_row.locator(".status")).to_have_text("Online", timeout=40_000)
            assert _not_reloaded(page), "the devices page reloaded to show the device"
            alice.comet(
                "schedule", "add", "--item", "docs", "--vault", "v", "--daily", "03:00",
                "--bandwidth-limit", str(BANDWIDTH),
            )  # fmt: skip

            # --- back up now; progress reaches success over SSE, without a reload
            action = alice_row.locator("form[action$='/backup']").get_attribute("action") or ""
            alice_device = action.split("/")[2]
            alice_row.get_by_role("button", name="Back up now").click()
            expect(page).to_have_url(re.compile(re.escape(base) + r"/jobs/[0-9a-f-]+"))
            job_url = page.url.split("?")[0]
            alice_job = job_url.rsplit("/", 1)[1]
            expect(page.locator(".flash.ok")).to_contain_text("backup started")
            expect(page.locator("h1 .status")).to_have_text("Running")
            expect(page.locator(".live progress")).to_be_visible()
            _mark(page)
            _shot(page, "job-running")
            expect(page.locator("h1 .status")).to_have_text("Success", timeout=60_000)
            expect(page.locator(".live")).to_have_count(0)  # the final page swapped in
            expect(page.locator("pre.log")).to_contain_text("INFO")
            assert _not_reloaded(page), "the job page reloaded to show the end of the job"
            facts = page.locator("dl.facts")
            expect(facts).to_contain_text(alice_device)
            files = facts.locator("dt", has_text="Files").locator("xpath=following-sibling::dd[1]")
            expect(files).to_have_text("1")

            # --- history: both jobs, then the log of one, then filters
            bob_thread.join(timeout=60)
            assert not bob_thread.is_alive(), "bob's backup did not end"
            if "error" in bob_done:
                raise bob_done["error"]
            bob_job = bob_done["job"].json()["job_id"]
            page.click("nav >> text=Jobs")
            expect(page.locator("h1")).to_have_text("Job history")
            table = page.locator("table tbody")
            expect(table.locator("tr")).to_have_count(2)
            _shot(page, "jobs")
            page.click(f"table a[href='/jobs/{alice_job}']")
            expect(page).to_have_url(job_url)
            expect(page.locator("h2")).to_have_text("Log")
            expect(page.locator("pre.log")).to_be_visible()
            _shot(page, "job")

            page.click("nav >> text=Jobs")
            page.fill("input[name=device]", alice_device)
            page.fill("input[name=status]", "SUCCESS")
            page.click("form.filters button[type=submit]")
            expect(page).to_have_url(re.compile(r"device=" + alice_device + r".*status=SUCCESS"))
            expect(page.locator("input[name=device]")).to_have_value(alice_device)
            expect(table.locator("tr")).to_have_count(1)
            expect(table).to_contain_text("alice")
            expect(table).not_to_contain_text("bob")
            _shot(page, "jobs-filtered")
            page.fill("input[name=status]", "ERROR")
            page.click("form.filters button[type=submit]")
            expect(page).to_have_url(re.compile(r"status=ERROR"))
            expect(page.locator(".empty")).to_contain_text("No jobs match these filters")
            page.fill("input[name=device]", bob_done["device"])
            page.fill("input[name=status]", "")
            page.click("form.filters button[type=submit]")
            expect(table.locator("tr")).to_have_count(1)
            expect(table).to_contain_text("bob")

            # --- the pages with data, for their screenshots (test_pages covers them)
            page.click("nav >> text=Dashboard")
            expect(page.locator(".tile").first).to_contain_text("2")
            _shot(page, "dashboard", phone=True)
            page.click("nav >> text=Users")
            expect(page.locator("table")).to_contain_text("oscar")
            _shot(page, "users")
            page.click("table >> text=alice")
            expect(page.locator("h2").first).to_have_text("Devices")
            expect(page.locator("main")).to_contain_text("alice-laptop")
            _shot(page, "user")
            tour = ("policies", "buckets", "audit", "server", "api-keys")
            for name in tour if os.environ.get("COMET_CONSOLE_SCREENSHOTS") else ():
                page.goto(f"{base}/{name}")
                expect(page.locator("h1")).to_be_visible()
                _shot(page, name)

            # --- revoke alice's device
            page.click("nav >> text=Devices")
            expect(alice_row.locator(".status")).to_have_text("Online")
            _shot(page, "devices", phone=True)
            alice_row.get_by_role("button", name="Revoke").click()
            expect(page.locator(".flash.ok")).to_have_text(f"device {alice_device} revoked")
            expect(alice_row.locator(".status")).to_have_text("Revoked")
            expect(alice_row.get_by_role("button")).to_have_count(0)

            # --- a forged cross-site post: no CSRF token, refused, nothing created
            forged = page.request.post(
                base + "/users",
                form={"username": "mallory", "password": "mallory-pass"},
                max_redirects=0,
            )
            assert forged.status == 303 and "CSRF" in forged.headers["location"]
            page.goto(base + "/users?q=mallory")
            expect(page.locator(".empty")).to_contain_text("No user matches")
            _sign_out(page, base)

            # --- alice in the customer portal: her own device and job, nothing of bob's
            _sign_in(page, base, "alice", "alice-password", "/portal")
            portal = page.locator("main")
            expect(portal).to_contain_text("alice-laptop")
            expect(portal.locator(f"a[href='/portal/jobs/{alice_job}']")).to_have_count(1)
            expect(portal).not_to_contain_text("bob")
            expect(page.locator("nav a")).to_have_count(1)  # "My backups" only
            _shot(page, "portal")
            page.click(f"a[href='/portal/jobs/{alice_job}']")
            expect(page.locator("pre.log")).to_be_visible()
            _shot(page, "portal-job")
            page.goto(f"{base}/portal/jobs/{bob_job}")
            expect(page.locator("h1")).to_have_text("Not found")
            page.goto(base + "/devices")
            expect(page.locator("h1")).to_have_text("Not allowed")
            _sign_out(page, base)

            # --- an OPERATOR: may back up bob's device, has no control to revoke it or
            # add a user, and a post of a SUPER-only form anyway is refused
            _sign_in(page, base, "oscar", "oscar-password", "/dashboard")
            page.click("nav >> text=Devices")
            bob_row = page.locator("#device-list tr", has_text="bob-laptop")
            expect(bob_row.get_by_role("button", name="Back up now")).to_be_visible()
            expect(bob_row.get_by_role("button", name="Revoke")).to_have_count(0)
            page.click("nav >> text=Users")
            expect(page.locator("h1")).to_have_text("Users")
            expect(page.locator("h2", has_text="Add a user")).to_have_count(0)
            token = page.locator("form.signout input[type=hidden]")
            page.evaluate(
                """([field, token]) => {
                  const form = document.createElement("form");
                  form.method = "post";
                  form.action = "/users";
                  for (const [name, value] of [[field, token], ["username", "eve"],
                                               ["password", "eve-password"]]) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.appendChild(input);
                  }
                  document.body.appendChild(form);
                  form.submit();
                }""",
                [token.get_attribute("name"), token.get_attribute("value")],
            )
            expect(page.locator(".flash.bad")).to_contain_text("does not allow this action")
            expect(page).to_have_url(re.compile(re.escape(base) + r"/users\?err="))
            _shot(page, "operator-refused")
            page.goto(base + "/users?q=eve")
            expect(page.locator(".empty")).to_contain_text("No user matches")

            assert not [e for e in errors if "Content Security Policy" in e], errors
            browser.close()
    finally:
        for thread in starting:
            thread.join(timeout=30)
        for agent in (alice, bob):
            agent.kill()
        shutil.rmtree(profile, ignore_errors=True)
