"""Telling the server's audit log what a person did on this device (lock, unlock,
disconnect). Best effort: a server that cannot be reached does not stop the action."""

from __future__ import annotations

import logging

import grpc

from comet.agent.state import LoginState
from comet.agent.transport import aio_channel, rpc_error_message
from comet.v1 import control_pb2, control_pb2_grpc

log = logging.getLogger(__name__)

TIMEOUT = 3.0


async def report_device_event(login: LoginState, action: str) -> None:
    if not login.logged_in or not login.device_token:
        return
    channel = aio_channel(login.server, trust=login.trust)
    try:
        await control_pb2_grpc.AgentServiceStub(channel).ReportDeviceEvent(
            control_pb2.DeviceEvent(action=action),
            metadata=(("authorization", f"Bearer {login.device_token}"),),
            timeout=TIMEOUT,
        )
    except grpc.aio.AioRpcError as e:
        log.info("the server did not record %s: %s", action, rpc_error_message(e))
    finally:
        await channel.close()
