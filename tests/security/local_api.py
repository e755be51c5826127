"""Settings a user changes through their own agent's local API, for tests."""

from __future__ import annotations

import grpc

from comet.v1 import agent_api_pb2, agent_api_pb2_grpc
from tests.fixtures.processes import AgentProcess


def set_admin_view_files(agent: AgentProcess, allowed: bool) -> None:
    """The user's "administrators may view my files" setting, saved through the agent."""
    with grpc.insecure_channel(f"unix:{agent.socket}") as channel:
        stub = agent_api_pb2_grpc.AgentApiStub(channel)
        profile = stub.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=30)
        profile.settings.allow_admin_view_files = allowed
        stub.SaveProfile(agent_api_pb2.SaveProfileRequest(profile=profile), timeout=30)
