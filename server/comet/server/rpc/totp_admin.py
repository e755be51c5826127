"""An administrator resetting a user's two-factor authentication: the store call and
its audit entry, written with the real outcome (success or the refusal)."""

from __future__ import annotations

from typing import Any

import grpc

from comet.server.errors import ServerError
from comet.server.rpc.auth_context import peer_address
from comet.server.store.accounts import AccountStore


async def audited_totp_reset(
    accounts: AccountStore,
    admin: str,
    username: str,
    context: grpc.aio.ServicerContext[Any, Any],
) -> None:
    source = peer_address(context)
    try:
        was_enabled = await accounts.reset_totp(username)
    except ServerError as e:
        await accounts.audit(
            admin, "user.reset_totp", username, source=source, success=False, details=e.message
        )
        raise
    await accounts.audit(
        admin,
        "user.reset_totp",
        username,
        source=source,
        details="two-factor turned off" if was_enabled else "two-factor was not enabled",
    )
