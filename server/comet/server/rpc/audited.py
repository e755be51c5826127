"""Actions audited with their real outcome: the entry is written after the action, as
a success or as a refusal/failure with the reason (a dispatch to an offline device is
recorded as failed, not as sent)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from comet.server.errors import ServerError
from comet.server.profile_changes import profile_changes
from comet.server.rpc.auth_context import peer_address
from comet.server.store.accounts import AccountStore, Principal
from comet.server.store.profiles import ProfileStore, ProfileView

T = TypeVar("T")
Ctx = grpc.aio.ServicerContext[Any, Any]


async def audited(
    accounts: AccountStore,
    work: Awaitable[T],
    *,
    actor: str,
    action: str,
    target: str,
    context: Ctx,
    details: str = "",
    refused: Callable[[T], str] = lambda _result: "",
) -> T:
    """Await ``work``, then audit it: success, or failure with the error's message
    (the error is re-raised), or failure with what ``refused`` finds in the result
    (a device that answered with an error)."""
    return await audited_from(
        accounts, work, actor=actor, action=action, target=target,
        source=peer_address(context), details=details, refused=refused,
    )  # fmt: skip


async def audited_from(
    accounts: AccountStore,
    work: Awaitable[T],
    *,
    actor: str,
    action: str,
    target: str,
    source: str,
    details: str = "",
    refused: Callable[[T], str] = lambda _result: "",
) -> T:
    """``audited`` for a caller known by its address (the web console's too)."""
    try:
        result = await work
    except ServerError as e:
        reason = f"{details}; {e.message}" if details else e.message
        await accounts.audit(actor, action, target, source=source, success=False, details=reason)
        raise
    problem = refused(result)
    if problem:
        reason = f"{details}; {problem}" if details else problem
        await accounts.audit(actor, action, target, source=source, success=False, details=reason)
    else:
        await accounts.audit(actor, action, target, source=source, details=details)
    return result


async def audited_profile_put(
    accounts: AccountStore,
    profiles: ProfileStore,
    principal: Principal,
    context: Ctx,
    *,
    version: int,
    document: dict[str, Any],
) -> ProfileView:
    """Save a device's profile edit; audit each vault/item/schedule/settings change,
    or the refusal (a policy rule, a stale version, an invalid document)."""
    assert principal.device_id is not None
    before = await profiles.get(principal.user_id, reveal_secrets=False)
    source = peer_address(context)
    try:
        view = await profiles.put(
            principal.user_id, device_id=principal.device_id, version=version, document=document
        )
    except ServerError as e:
        await accounts.audit(
            principal.username, "profile.save", principal.device_id, source=source,
            success=False, details=f"refused: {e.message}",
        )  # fmt: skip
        raise
    after = await profiles.get(principal.user_id, reveal_secrets=False)
    for change in profile_changes(before.document, after.document):
        await accounts.audit(
            principal.username, change.action, change.target, source=source,
            details=change.details,
        )  # fmt: skip
    return view
