"""Typed agent configuration and default locations. The only module of the agent
that reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AgentConfig:
    state_dir: Path
    socket_path: Path
    # Live-connection reconnect backoff: doubles from min to max, jittered down by up
    # to half. The cap bounds how long after a server comes back the agent finds it.
    reconnect_min_seconds: float = 0.5
    reconnect_max_seconds: float = 4.0
    heartbeat_seconds: float = 15.0


def default_state_dir() -> Path:
    env = os.environ.get("COMET_AGENT_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/comet-agent")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "comet-agent"


def default_socket_path() -> Path:
    env = os.environ.get("COMET_AGENT_SOCKET")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/comet-agent/agent.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "comet-agent" / "agent.sock"
    return default_state_dir() / "agent.sock"


def reconnect_max_from_env(default: float) -> float:
    """Tests shorten the reconnect backoff with COMET_AGENT_RECONNECT_MAX."""
    value = os.environ.get("COMET_AGENT_RECONNECT_MAX")
    return float(value) if value else default
