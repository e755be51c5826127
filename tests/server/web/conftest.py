"""The console's ASGI app on the stores of a fresh test database, driven in-process
by an httpx client (the test's own event loop), plus helpers to sign in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from comet.server.administration import Administration
from comet.server.app import Stores
from comet.server.rpc.client_address import ClientAddresses
from comet.server.rpc.live import LiveRegistry
from comet.server.rpc.routing import CommandRouter
from comet.server.store.accounts import Role
from comet.server.web.access import Access
from comet.server.web.app import WebOptions, build_app
from comet.server.web.console import Console
from comet.server.web.session_cookie import CookieCodec
from tests.server.conftest import KDF, PASSWORD, FakeClock, auth_key

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Web:
    stores: Stores
    clock: FakeClock
    transport: httpx.ASGITransport
    # The router's registry: a test connects a device's stream (an agent at the edge).
    registry: LiveRegistry | None = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, base_url="http://console.test")

    async def add_user(self, name: str, role: Role = Role.USER) -> None:
        await self.stores.accounts.create_user(name, KDF, auth_key(), role=role)

    async def signed_in(self, name: str, password: str = PASSWORD) -> httpx.AsyncClient:
        """A client with a console session of ``name``."""
        client = self.client()
        form = await client.get("/signin")
        nonce = CSRF_RE.search(form.text)
        assert nonce, form.text
        reply = await client.post(
            "/signin",
            data={"csrf": nonce.group(1), "username": name, "password": password},
        )
        assert reply.status_code == 303 and "err=" not in reply.headers["location"], reply.headers
        return client

    async def api_key(self, name: str, role: Role) -> str:
        owner = await self.stores.accounts.authenticate_session(
            (
                await self.stores.accounts.login(name, auth_key(), source="t", admin_session=True)
            ).session_token,
            admin=True,
        )
        created = await self.stores.api_keys.create(owner, name="test", role=role)
        return created.key


async def csrf_of(client: httpx.AsyncClient, path: str = "/") -> str:
    """The CSRF token on a page of the signed-in client."""
    page = await client.get(path, follow_redirects=True)
    found = CSRF_RE.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


@pytest.fixture
async def web(stores: Stores, clock: FakeClock) -> AsyncIterator[Web]:
    registry = LiveRegistry()
    router = CommandRouter(registry, instance_id="test")
    administration = Administration(
        stores.accounts, stores.profiles, stores.policies, stores.jobs, router,
        stores.buckets, api_keys=stores.api_keys,
    )  # fmt: skip
    console = Console(
        accounts=stores.accounts, profiles=stores.profiles, policies=stores.policies,
        jobs=stores.jobs, buckets=stores.buckets, overview=stores.overview,
        directory=stores.directory,
        administration=administration, instance_id="test", version="test",
    )  # fmt: skip
    access = Access(
        stores.accounts, stores.api_keys, CookieCodec(b"k" * 32), clock,
        idle=timedelta(minutes=30), addresses=ClientAddresses(),
    )  # fmt: skip
    app = build_app(console, access, WebOptions(live_every=0.05))
    yield Web(stores, clock, httpx.ASGITransport(app=app), registry)
