"""The live-connection loop survives every error class and every cancellation that is
not its own shutdown: it keeps dialling (fault injection at the connection attempt)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from comet.agent.server_link import LiveConnection
from comet.agent.state import AgentState, LoginState


class Faults:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.calls = 0

    async def __call__(self, login: LoginState) -> bool:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        await asyncio.sleep(0.01)
        return False


async def never(_command: object) -> object:
    raise AssertionError("no command expected")


async def test_the_loop_outlives_every_error_class_and_stray_cancellation(
    tmp_path: Path,
) -> None:
    state = AgentState(tmp_path / "state")
    state.save_login(LoginState(server="http://127.0.0.1:9/", device_token="t", device_id="d"))
    live = LiveConnection(
        state,
        never,  # type: ignore[arg-type]
        on_logged_out=lambda _reason: None,
        reconnect_min=0.01,
        reconnect_max=0.02,
        heartbeat_seconds=1,
    )
    faults = Faults(
        [
            RuntimeError("a bug"),
            asyncio.CancelledError(),  # a call cancelled under it (disconnect, login)
            OSError("network down"),
            ValueError("bad data"),
            grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()
            ),
            KeyError("x"),
        ]
    )
    live._connect_once = faults  # type: ignore[method-assign]
    live.start()
    try:
        for _ in range(200):
            if faults.calls >= 8:
                break
            await asyncio.sleep(0.02)
        assert faults.calls >= 8, faults.calls
        assert live._task is not None and not live._task.done()
    finally:
        await asyncio.wait_for(live.stop(), 5)  # its own shutdown still ends it
    assert live._task is not None and live._task.done()
    state.close()
