"""The role matrix of the HTTP API: every /api/v1/ route, called by every kind of
caller (nobody, a device token, a user's console session, SUPER/OPERATOR/AUDITOR API
keys, a revoked key), allowed or refused exactly as ``authorization.HTTP_ACTIONS``
and ``PERMISSIONS`` say, with a JSON error carrying a stable code. Runs the console
app in-process on a real PostgreSQL (conftest.py beside this file); modelled on
tests/security/test_roles.py, the gRPC matrix."""

from __future__ import annotations

import re

import httpx
import pytest

from comet.server.authorization import ANYONE, HTTP_ACTIONS, PERMISSIONS, Caller
from comet.server.store.accounts import Role
from comet.server.web.api import PREFIX
from tests.server.conftest import auth_key
from tests.server.web.conftest import Web, csrf_of

pytestmark = pytest.mark.timeout(120)

NOBODY = "00000000-0000-0000-0000-000000000000"
PARAMS = {
    "username": "nobody-here", "device_id": NOBODY, "job_id": NOBODY, "key_id": NOBODY,
    "policy_id": NOBODY,
}  # fmt: skip
# Bodies an allowed caller gets past the table with, changing nothing that matters.
BODIES = {
    "POST /api/v1/users": {"username": "bad name!", "password": "long enough"},
    "POST /api/v1/users/{username}/password": {"password": "long enough 1"},
    "PUT /api/v1/users/{username}/policy": {"policy_id": ""},
    "POST /api/v1/devices/{device_id}/cancel": {"job_id": NOBODY},
    "POST /api/v1/api-keys": {"name": "matrix"},
    "POST /api/v1/policies": {"name": ""},  # refused for its empty name: nothing saved
    "PUT /api/v1/policies/{policy_id}": {"name": "matrix"},
    "PUT /api/v1/users/{username}/role": {"role": "user"},
    "PUT /api/v1/users/{username}/max-devices": {"max_devices": 1},
}
CALLERS: dict[str, Caller | None] = {
    "anonymous": Caller.ANONYMOUS,
    "device": Caller.DEVICE,
    "user": Caller.USER,
    "super": Caller.SUPER,
    "operator": Caller.OPERATOR,
    "auditor": Caller.AUDITOR,
    "revoked key": None,
}
API_ROUTES = sorted(k for k in HTTP_ACTIONS if k.split(" ", 1)[1].startswith(PREFIX))


def expected_allowed(route: str, who: str) -> bool:
    allowed = PERMISSIONS[HTTP_ACTIONS[route]]
    if allowed == ANYONE:
        return True
    caller = CALLERS[who]
    return caller is not None and caller in allowed


async def _callers(web: Web) -> dict[str, tuple[httpx.AsyncClient, dict[str, str]]]:
    for name, role in (("root", Role.SUPER_ADMIN), ("op", Role.OPERATOR), ("aud", Role.AUDITOR)):
        await web.add_user(name, role)
    await web.add_user("alice")
    keys = {
        "super": await web.api_key("root", Role.SUPER_ADMIN),
        "operator": await web.api_key("op", Role.OPERATOR),
        "auditor": await web.api_key("aud", Role.AUDITOR),
        "revoked key": await web.api_key("root", Role.SUPER_ADMIN),
    }
    owner = await web.stores.accounts.authenticate_session(
        (
            await web.stores.accounts.login("root", auth_key(), source="t", admin_session=True)
        ).session_token,
        admin=True,
    )
    revoked = [
        k for k in await web.stores.api_keys.list(owner) if keys["revoked key"][:12] == k.prefix
    ]
    await web.stores.api_keys.revoke(owner, revoked[0].key_id)
    user = await web.signed_in("alice")
    out: dict[str, tuple[httpx.AsyncClient, dict[str, str]]] = {
        "anonymous": (web.client(), {}),
        "device": (web.client(), {"authorization": "Bearer a-device-token-is-no-api-key"}),
        "user": (user, {"x-csrf-token": await csrf_of(user, "/portal")}),
    }
    for who, key in keys.items():
        out[who] = (web.client(), {"authorization": f"Bearer {key}"})
    return out


async def test_every_route_is_served_and_every_served_route_has_a_row(web: Web) -> None:
    app = web.transport.app
    served = {
        f"{method} {route.path}"
        for route in app.routes  # type: ignore[attr-defined]
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD"
    }
    assert served == set(HTTP_ACTIONS)


async def test_the_http_role_matrix(web: Web) -> None:
    callers = await _callers(web)
    wrong: list[str] = []
    refused_by: dict[str, int] = {}
    for route in API_ROUTES:
        method, template = route.split(" ", 1)
        path = re.sub(r"{(\w+)}", lambda m: PARAMS[m.group(1)], template)
        for who, (client, headers) in callers.items():
            reply = await client.request(method, path, headers=headers, json=BODIES.get(route))
            denied = reply.status_code in (401, 403)
            if denied:
                error = reply.json()["error"]
                assert error["code"] in (
                    "unauthenticated",
                    "unknown_credential",
                    "permission_denied",
                )
                assert error["message"]
                refused_by[who] = refused_by.get(who, 0) + 1
            assert reply.status_code < 500, (route, who, reply.text)
            if denied == expected_allowed(route, who):
                wrong.append(f"{route} by {who}: got {reply.status_code} {reply.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert set(refused_by) == set(CALLERS)  # the table is not vacuous for anyone
    # A known caller refused for its role is audited, with the route it tried.
    denied = await web.stores.accounts.list_audit(action="authorization.denied", limit=500)
    tried = {(e.actor, e.target) for e in denied}
    assert ("op", "POST /api/v1/users") in tried
    assert ("alice", "GET /api/v1/users") not in tried  # another credential kind: no row
