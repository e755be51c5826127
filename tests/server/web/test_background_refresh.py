"""The devices page re-reads its list every few seconds; those re-reads (marked with
X-Comet-Refresh) are not the admin's activity, so a page left open still reaches the
idle timeout, while a click renews it."""

from __future__ import annotations

from comet.server.store.accounts import Role
from tests.server.web.conftest import Web

REFRESH = {"x-comet-refresh": "1", "hx-request": "true"}


async def test_periodic_refresh_does_not_keep_an_idle_session_alive(web: Web) -> None:
    await web.add_user("root", Role.SUPER_ADMIN)
    page = await web.signed_in("root")
    listing = await page.get("/devices")
    assert 'id="device-list"' in listing.text and "X-Comet-Refresh" in listing.text

    web.clock.advance(minutes=20)
    refreshed = await page.get("/devices", headers=REFRESH)
    assert refreshed.status_code == 200 and "set-cookie" not in refreshed.headers
    web.clock.advance(minutes=11)  # 31 minutes since the last click
    expired = await page.get("/devices", headers=REFRESH)
    # htmx would follow a 303 and swap the sign-in page into the list: the whole window
    # is sent to sign-in instead.
    assert expired.status_code == 200 and "idle" in expired.headers["hx-redirect"]
    assert expired.headers["hx-redirect"].startswith("/signin?next=/devices")
    assert (await page.get("/devices")).status_code == 303

    # The same wait with a click in between: renewed, still signed in.
    clicked = await web.signed_in("root")
    web.clock.advance(minutes=20)
    renewed = await clicked.get("/devices")
    assert "set-cookie" in renewed.headers
    web.clock.advance(minutes=11)
    assert (await clicked.get("/devices", headers=REFRESH)).status_code == 200
    await page.aclose()
    await clicked.aclose()
