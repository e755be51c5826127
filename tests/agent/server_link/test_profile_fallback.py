"""The agent uses its cached profile whenever the server cannot give it one, except
when the server refuses this device: then the cache is no longer its to use."""

from __future__ import annotations

from pathlib import Path

import pytest

from comet.agent.profile_sync import ProfileError, ProfileSync
from comet.agent.state import AgentState, LoginState
from comet.server.store.profiles import ProfileStore
from tests.server.conftest import RpcServer, Session


@pytest.fixture
async def alice(rpc: RpcServer) -> Session:
    await rpc.add_user("alice")
    return await rpc.device("alice")


def logged_in(tmp_path: Path, rpc: RpcServer, device: Session) -> AgentState:
    state = AgentState(tmp_path)
    state.save_login(
        LoginState(
            server=f"http://{rpc.target}/",
            username=device.username,
            device_id=device.device_id,
            device_token=device.metadata[0][1].removeprefix("Bearer "),
        )
    )
    return state


async def test_a_broken_server_falls_back_to_the_cache_a_refusal_does_not(
    tmp_path: Path, rpc: RpcServer, alice: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = logged_in(tmp_path, rpc, alice)
    sync = ProfileSync(state)
    with pytest.raises(ProfileError):  # broken and nothing cached yet: say so
        monkeypatch.setattr(ProfileStore, "get", broken)
        await sync.fetch()
    monkeypatch.undo()
    fresh = await sync.fetch()

    monkeypatch.setattr(ProfileStore, "get", broken)  # INTERNAL, not UNAVAILABLE
    assert await sync.fetch() == fresh
    monkeypatch.undo()

    await rpc.stores.accounts.revoke_device(alice.device_id)
    with pytest.raises(ProfileError, match="cannot read the profile"):
        await sync.fetch()
    state.close()


async def broken(self: ProfileStore, user_id: str, *, reveal_secrets: bool) -> None:
    raise RuntimeError("a bug in the server")
