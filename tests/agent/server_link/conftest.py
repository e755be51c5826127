"""The agent's parts that talk to the server (outbox, profile sync) are tested
against a real in-process server: its fixtures come from the server tests."""

from tests.server.conftest import (  # noqa: F401
    accounts,
    clock,
    engine,
    rpc,
    secret_box,
    stores,
)
