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
    # The device-local policy for remote commands (see device_policy); root-owned.
    policy_path: Path = Path("/etc/comet-agent/agent.toml")


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


def clock_offset_ns_from_env() -> int:
    """Tests shift the agent's wall clock with COMET_CLOCK_OFFSET (seconds, may be
    negative) to show nothing depends on two devices' clocks agreeing."""
    value = os.environ.get("COMET_CLOCK_OFFSET")
    return int(float(value) * 1e9) if value else 0


def lock_hostname_from_env() -> str:
    """Tests make one agent judge locks as if it ran on another host with
    COMET_HOSTNAME ("" means the real host name)."""
    return os.environ.get("COMET_HOSTNAME", "")


def lock_timing_from_env() -> dict[str, float]:
    """Tests shorten repository lock and prune periods (seconds) with
    COMET_LOCK_STALE, COMET_LOCK_REFRESH and COMET_PRUNE_GRACE."""
    out = {}
    for name, env in (
        ("stale", "COMET_LOCK_STALE"),
        ("refresh", "COMET_LOCK_REFRESH"),
        ("grace", "COMET_PRUNE_GRACE"),
    ):
        if value := os.environ.get(env):
            out[name] = float(value)
    return out


def default_policy_path() -> Path:
    """/etc/comet-agent/agent.toml; tests point COMET_AGENT_POLICY_FILE elsewhere."""
    env = os.environ.get("COMET_AGENT_POLICY_FILE")
    return Path(env) if env else Path("/etc/comet-agent/agent.toml")
