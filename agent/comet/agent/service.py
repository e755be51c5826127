"""The agent service: owns the state, the live connection and the local API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

import grpc

from comet.agent import __version__
from comet.agent.config import AgentConfig
from comet.agent.errors import AgentError
from comet.agent.local_api import LocalApi
from comet.agent.server_link import LiveConnection, login
from comet.agent.state import AgentState
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc, control_pb2

log = logging.getLogger(__name__)


class SocketInUseError(AgentError):
    code = "socket_in_use"


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self._config = config
        self._state = AgentState(config.state_dir)
        self._live = LiveConnection(
            self._state,
            self._handle_command,
            on_logged_out=self._logged_out_by_server,
            reconnect_min=config.reconnect_min_seconds,
            reconnect_max=config.reconnect_max_seconds,
            heartbeat_seconds=config.heartbeat_seconds,
        )

    # ------------------------------------------------------------ operations

    def status(self) -> agent_api_pb2.StatusReply:
        login_state = self._state.load_login()
        return agent_api_pb2.StatusReply(
            logged_in=login_state.logged_in,
            locked=login_state.locked,
            server=login_state.server,
            username=login_state.username,
            device_id=login_state.device_id if login_state.logged_in else "",
            connected=self._live.connected,
            running_jobs=[],
            device_name=login_state.device_name,
            version=__version__,
            last_error=login_state.last_error or self._live.last_error,
        )

    async def login(self, request: agent_api_pb2.AgentLoginRequest) -> bool:
        outcome = await login(
            self._state,
            request.server,
            request.username,
            request.password,
            totp_code=request.totp_code,
            device_name=request.device_name,
        )
        self._live.reconnect_now()
        # Give the live connection a moment so `comet status` right after login
        # already shows it; a slow server is fine, the connection comes up later.
        for _ in range(50):
            if self._live.connected:
                break
            await asyncio.sleep(0.05)
        return outcome.device_registered_now

    def lock(self) -> None:
        from dataclasses import replace

        self._state.save_login(replace(self._state.load_login(), locked=True))

    async def disconnect(self) -> None:
        self._state.logout()
        self._live.reconnect_now()

    # ------------------------------------------------------------ server side

    def _logged_out_by_server(self, reason: str) -> None:
        self._state.logout(error=reason)

    async def _handle_command(self, command: control_pb2.Command) -> control_pb2.CommandReply:
        action = command.WhichOneof("action")
        if action == "refetch_profile":
            return control_pb2.CommandReply(done=control_pb2.Empty())
        if action == "disconnect":
            # Reply first, then log out: the stream carries the reply back.
            asyncio.get_running_loop().call_later(0.2, self._disconnect_from_server)
            return control_pb2.CommandReply(done=control_pb2.Empty())
        raise AgentError(f"this agent does not support the command {action!r} yet")

    def _disconnect_from_server(self) -> None:
        self._state.logout(error="disconnected by an administrator")
        self._live.reconnect_now()

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await self._serve_local_api()
        self._live.start()
        print(f"agent listening on unix:{self._config.socket_path}", flush=True)
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            await self._live.stop()
            await server.stop(grace=1)
            with contextlib.suppress(FileNotFoundError):
                self._config.socket_path.unlink()
            self._state.close()

    async def _serve_local_api(self) -> grpc.aio.Server:
        path = self._config.socket_path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists():
            if await _socket_answers(path):
                raise SocketInUseError(f"another comet-agent is already serving {path}")
            path.unlink()
        server = grpc.aio.server()
        agent_api_pb2_grpc.add_AgentApiServicer_to_server(LocalApi(self), server)
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            server.add_insecure_port(f"unix:{path}")
            await server.start()
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        return server


async def _socket_answers(path: Path) -> bool:
    channel = grpc.aio.insecure_channel(f"unix:{path}")
    try:
        await asyncio.wait_for(channel.channel_ready(), 1.0)
        return True
    except (TimeoutError, grpc.aio.AioRpcError):
        return False
    finally:
        await channel.close()
