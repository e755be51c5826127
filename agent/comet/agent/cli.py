"""``comet-agent``: the background service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from comet.agent.config import (
    AgentConfig,
    default_policy_path,
    default_socket_path,
    default_state_dir,
    missed_grace_from_env,
    reconnect_max_from_env,
)
from comet.agent.errors import AgentError, os_error_sentence
from comet.agent.output import fail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comet-agent", description="The Comet agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent service in the foreground")
    run.add_argument("--state-dir", type=Path, default=None)
    run.add_argument("--socket", type=Path, default=None, help="local API unix socket")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = AgentConfig(
        state_dir=(args.state_dir or default_state_dir()).absolute(),
        socket_path=(args.socket or default_socket_path()).absolute(),
        reconnect_max_seconds=reconnect_max_from_env(4.0),
        policy_path=default_policy_path(),
        missed_grace_seconds=missed_grace_from_env(600.0),
    )
    if len(str(config.socket_path)) > 107:
        return fail("comet-agent", f"socket path too long for a unix socket: {config.socket_path}")
    from comet.agent.memory import tune_malloc
    from comet.agent.service import Agent

    tune_malloc()
    try:
        asyncio.run(Agent(config).run())
    except AgentError as e:
        return fail("comet-agent", str(e))
    except OSError as e:  # a state dir or socket folder that cannot be used
        if e.filename is None:
            raise  # not a path problem: keep the traceback
        return fail("comet-agent", os_error_sentence(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
