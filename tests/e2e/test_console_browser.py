"""The web console in a real browser: Debian's chromium driven by Playwright (never a
downloaded browser) against a real ``comet-server serve --web-listen`` process on the
test PostgreSQL. Signs in as the admin, sees the dashboard, adds a user through the
form and opens their page; then a forged cross-site POST without the CSRF token is
refused. With COMET_CONSOLE_SCREENSHOTS=DIR set, each page is saved there as PNG
(docs/images/console-*.png were made so)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import BIN, ServerProcess, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "console-admin-1"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def console_server(postgres_cluster: PostgresCluster) -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="comet-web-"))
    database = postgres_cluster.fresh_database()
    try:
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
            yield f"http://127.0.0.1:{web_port}"
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _shot(page: object, name: str) -> None:
    folder = os.environ.get("COMET_CONSOLE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_sign_in_see_the_dashboard_add_and_open_a_user(console_server: str) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is needed: deploy/bootstrap --dev installs it"
    from playwright.sync_api import expect, sync_playwright

    profile = tempfile.mkdtemp(prefix="comet-chromium-")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 800},
            )  # fmt: skip
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(console_server + "/")
            expect(page).to_have_url(console_server + "/signin")
            _shot(page, "signin")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(console_server + "/dashboard")
            expect(page.locator("h1")).to_have_text("Dashboard")
            expect(page.locator(".tile").first).to_contain_text("devices online")
            _shot(page, "dashboard")

            page.click("nav >> text=Users")
            expect(page.locator("h1")).to_have_text("Users")
            page.fill("form.grid input[name=username]", "alice")
            page.fill("form.grid input[name=password]", "alice-password")
            page.click("form.grid button[type=submit]")
            expect(page.locator(".flash.ok")).to_contain_text("user alice added")
            expect(page.locator("h1")).to_contain_text("alice")
            _shot(page, "user")
            page.click("nav >> text=Users")
            expect(page.locator("table")).to_contain_text("alice")
            _shot(page, "users")
            page.click("table >> text=alice")
            expect(page.locator("h2").first).to_have_text("Devices")
            # The other pages, for their screenshots only (test_pages covers them).
            tour = ("devices", "jobs", "policies", "buckets", "audit", "server", "api-keys")
            for name in tour if os.environ.get("COMET_CONSOLE_SCREENSHOTS") else ():
                page.goto(f"{console_server}/{name}")
                expect(page.locator("h1")).to_be_visible()
                _shot(page, name)

            # A cross-site form post carries the cookie of no strict session and no
            # CSRF token: refused, nothing created.
            forged = page.request.post(
                console_server + "/users",
                form={"username": "mallory", "password": "mallory-pass"},
                max_redirects=0,
            )
            assert forged.status == 303 and "CSRF" in forged.headers["location"]
            page.goto(console_server + "/users?q=mallory")
            expect(page.locator(".empty")).to_contain_text("No user matches")
            assert not [e for e in errors if "Content Security Policy" in e], errors
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
