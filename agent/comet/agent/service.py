"""The agent service: wires the state, the job runner and outbox, the profile, the
live connection and the local API, and runs until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path

import grpc

from comet.agent import __version__, device_policy
from comet.agent.config import AgentConfig
from comet.agent.device_events import report_device_event
from comet.agent.errors import AgentError
from comet.agent.jobs.outbox import Outbox
from comet.agent.jobs.runner import JobRunner
from comet.agent.jobs.store import JobStore
from comet.agent.local_api import LocalApi
from comet.agent.memory import release_free_memory
from comet.agent.mount.registry import MountRegistry
from comet.agent.operations import Operations
from comet.agent.profile_sync import ProfileSync
from comet.agent.remote import RemoteCommands
from comet.agent.schedule_driver import ScheduleDriver
from comet.agent.server_link import (
    LiveConnection,
    LoginError,
    change_password,
    check_password,
    login,
)
from comet.agent.state import AgentState
from comet.agent.totp_link import TotpLink
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc

log = logging.getLogger(__name__)

PROFILE_REFRESH_SECONDS = 300


class SocketInUseError(AgentError):
    code = "socket_in_use"


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self._config = config
        self.state = AgentState(config.state_dir)
        self.jobs = JobStore(config.state_dir / "agent.db")
        self.runner = JobRunner(self.jobs, self._identity)
        self.profile = ProfileSync(self.state)
        self.outbox = Outbox(
            self.jobs,
            self.state,
            hide_file_names=lambda: not self.profile.cached().settings.allow_admin_view_files,
        )
        self.totp = TotpLink(self.state)
        self.ops = Operations(
            self.state, self.jobs, self.runner, self.profile, config.state_dir / "keys"
        )
        # The device's own limits on remote commands; an untrusted file stops the start.
        self.policy = device_policy.load(config.policy_path, state_dir=config.state_dir)
        self.remote = RemoteCommands(
            self.ops, self.policy, on_disconnect=self._disconnect_from_server
        )
        self.mounts = MountRegistry()
        self.schedules = ScheduleDriver(
            self.ops, grace=timedelta(seconds=config.missed_grace_seconds)
        )
        self.profile.on_change(self.schedules.profile_changed)
        self._live = LiveConnection(
            self.state,
            self.remote.handle,
            on_logged_out=self._logged_out_by_server,
            on_connected=self.outbox.poke,
            reconnect_min=config.reconnect_min_seconds,
            reconnect_max=config.reconnect_max_seconds,
            heartbeat_seconds=config.heartbeat_seconds,
        )

    def _identity(self) -> tuple[str, str]:
        login_state = self.state.load_login()
        return login_state.device_id, login_state.username

    # ------------------------------------------------------------ login state

    def status(self) -> agent_api_pb2.StatusReply:
        login_state = self.state.load_login()
        pending, rejected = self.outbox.counts()
        reply = agent_api_pb2.StatusReply(
            logged_in=login_state.logged_in,
            locked=login_state.locked,
            server=login_state.server,
            username=login_state.username,
            device_id=login_state.device_id if login_state.logged_in else "",
            connected=self._live.connected,
            running_jobs=self.runner.running_ids(),
            device_name=login_state.device_name,
            version=__version__,
            # The most pressing problem first: no login, no connection, records stuck.
            last_error=login_state.last_error or self._live.last_error or self.outbox.last_error,
            outbox_pending=pending,
            outbox_rejected=rejected,
        )
        for field, when in (
            (reply.last_contact, self._live.last_contact),
            (reply.next_scheduled_run, self.schedules.next_run()),
        ):
            if when is not None:
                field.FromDatetime(when.astimezone(UTC))
        return reply

    async def login(self, request: agent_api_pb2.AgentLoginRequest) -> bool:
        outcome = await login(
            self.state,
            request.server,
            request.username,
            request.password,
            totp_code=request.totp_code,
            device_name=request.device_name,
            ca_pem=request.ca_pem.encode(),
            trust_fingerprint=request.trust_fingerprint,
        )
        self._live.reconnect_now()
        self.outbox.poke()
        with contextlib.suppress(AgentError):
            await self.profile.fetch()
        # Give the live connection a moment so `comet status` right after login
        # already shows it; a slow server is fine, the connection comes up later.
        for _ in range(50):
            if self._live.connected:
                break
            await asyncio.sleep(0.05)
        return outcome.device_registered_now

    async def change_password(self, current: str, new: str) -> None:
        profile = await self.profile.fetch()
        await change_password(self.state, profile, current, new)
        await self.profile.fetch()

    async def unlock(self, password: str) -> None:
        """Open the app again after Lock: the password is checked on the device."""
        if not await asyncio.to_thread(check_password, self.state, password):
            raise LoginError("wrong password")
        self.state.save_login(replace(self.state.load_login(), locked=False))
        await report_device_event(self.state.load_login(), "unlock")

    async def lock(self) -> None:
        self.state.save_login(replace(self.state.load_login(), locked=True))
        await report_device_event(self.state.load_login(), "lock")

    async def disconnect(self) -> None:
        await report_device_event(self.state.load_login(), "disconnect")  # needs the login
        self.state.logout()
        self._live.reconnect_now()

    def _logged_out_by_server(self, reason: str) -> None:
        self.state.logout(error=reason)

    def _disconnect_from_server(self) -> None:
        self.state.logout(error="disconnected by an administrator")
        self._live.reconnect_now()

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for job in self.runner.recover_interrupted():
            log.warning("job %s was interrupted by an agent stop; marked abandoned", job.job_id)
        server = await self._serve_local_api()
        self._live.start()
        self.outbox.start()
        self.schedules.start()
        refresher = asyncio.create_task(self._refresh_profile())
        print(f"agent listening on unix:{self._config.socket_path}", flush=True)
        release_free_memory()  # what start-up allocated and freed (import-time garbage)
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            await self.mounts.stop_all()
            await server.stop(grace=1)
            refresher.cancel()
            await self.schedules.stop()
            await self.runner.shutdown()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.outbox.flush(), 5)
            await self.outbox.stop()
            await self._live.stop()
            with contextlib.suppress(FileNotFoundError):
                self._config.socket_path.unlink()
            stuck = self.runner.running_ids()
            self.jobs.close()
            self.state.close()
            if stuck:
                # Their records already say Cancelled; a worker thread blocked in a call
                # that cannot be interrupted must not hold the process past its stop.
                log.warning("%d job(s) did not stop in time; exiting anyway", len(stuck))
                logging.shutdown()
                os._exit(0)

    async def _refresh_profile(self) -> None:
        """Keeps the cached profile fresh, so changes made elsewhere (the app on another
        device, an admin, a policy) reach the schedules without a restart."""
        while True:
            if self.state.load_login().logged_in:
                try:
                    await self.profile.fetch()
                except AgentError as e:
                    log.info("profile refresh failed: %s", e)
            await asyncio.sleep(PROFILE_REFRESH_SECONDS)

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
