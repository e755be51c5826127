"""GUI tests: the real app against a real server and agent, offscreen."""

from __future__ import annotations

import os

# Qt reads this when the QApplication is created: it must be set before any test runs.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from comet.gui.agent_client import AgentClient
from comet.gui.app import AppController
from tests.fixtures.processes import AgentProcess


@pytest.fixture
def client(qapp: object, agent: AgentProcess) -> Iterator[AgentClient]:
    """The app's client of the test agent."""
    api = AgentClient(agent.socket)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def controller(qtbot: QtBot, client: AgentClient) -> Iterator[AppController]:
    """The app, started: it shows the login or the main window."""
    app = AppController(client)
    app.start()
    qtbot.waitUntil(lambda: app.login_window is not None or app.main_window is not None)
    try:
        yield app
    finally:
        for window in (app.login_window, app.main_window):
            if window is not None:
                window.hide()
