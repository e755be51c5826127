"""Programs a job runs stop within seconds of a cancel, even when they ignore SIGTERM:
pre/post commands and program restore targets blocked feeding a command that never
reads."""

from __future__ import annotations

import threading
import time

import pytest

from comet.agent.cancel import CancelToken
from comet.agent.errors import AgentError, CancelledError
from comet.agent.jobs.targets import RestoreType, TargetSpec, open_target
from comet.agent.process_group import run_command
from comet.agent.repository.tree import Node, NodeType

STUBBORN = "trap '' TERM; sleep 120"


def cancel_soon(token: CancelToken, after: float = 0.5) -> None:
    threading.Timer(after, token.cancel, args=("cancelled by a test",)).start()


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    token = CancelToken()
    cancel_soon(token)
    started = time.monotonic()
    with pytest.raises(CancelledError, match="cancelled by a test"):
        run_command(["/bin/sh", "-c", STUBBORN], token, timeout=60, grace=1)
    assert time.monotonic() - started < 4


def test_a_command_past_its_timeout_is_stopped() -> None:
    result = run_command(["/bin/sh", "-c", STUBBORN], CancelToken(), timeout=0.5, grace=0.5)
    assert result.returncode == -9


@pytest.mark.parametrize("kind", [RestoreType.PROGRAM_ARCHIVE, RestoreType.PROGRAM_PER_FILE])
def test_a_program_restore_target_blocked_on_a_command_that_never_reads_stops(
    kind: RestoreType,
) -> None:
    token = CancelToken()
    spec = TargetSpec(type=kind, program_command=STUBBORN)
    started = time.monotonic()
    with pytest.raises(AgentError), open_target(spec, token) as target:
        cancel_soon(token)
        data = b"x" * (1 << 20)
        if kind is RestoreType.PROGRAM_PER_FILE:
            node = Node(name="f", type=NodeType.FILE, mode=0o600, size=64 << 20)
            handle = target.begin_file(("f",), node, 64 << 20)
            assert handle is not None
            for n in range(64):  # far more than a pipe buffer holds
                target.write(handle, n << 20, data)
        else:
            writer = target._child  # type: ignore[attr-defined]
            for _ in range(64):
                writer.write(data)
    assert time.monotonic() - started < 8
