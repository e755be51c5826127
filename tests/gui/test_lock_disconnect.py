"""Close, Lock and Disconnect do what their tooltips say."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from comet.gui.agent_client import AgentClient
from comet.gui.app import AppController
from tests.fixtures.processes import ALICE_PASSWORD, AgentProcess
from tests.gui.driving import LEFT, SLOW


def test_lock_keeps_the_agent_logged_in_and_disconnect_logs_it_out(
    qtbot: QtBot, alice: AgentProcess, controller: AppController
) -> None:
    main = controller.main_window
    assert main is not None and controller.login_window is None
    assert "agent stays logged in" in main.close_button.toolTip()
    assert "username filled in" in main.lock_button.toolTip()
    assert "Scheduled backups stop" in main.disconnect_button.toolTip()

    qtbot.mouseClick(main.lock_button, LEFT)
    qtbot.waitUntil(lambda: controller.login_window is not None, timeout=SLOW)
    login = controller.login_window
    assert login is not None
    assert login.username.text() == "alice"
    status = alice.status()
    assert status["logged_in"] and status["locked"]

    # A restart of the app while locked opens on the login screen, username filled in.
    again = AppController(controller.client)
    again.start()
    qtbot.waitUntil(lambda: again.login_window is not None, timeout=SLOW)
    assert again.login_window is not None and again.login_window.username.text() == "alice"
    again.login_window.hide()

    login.password.setText(ALICE_PASSWORD)
    qtbot.mouseClick(login.login_button, LEFT)
    qtbot.waitUntil(lambda: controller.main_window is not None, timeout=SLOW)
    main = controller.main_window
    assert main is not None
    assert not alice.status()["locked"]

    qtbot.mouseClick(main.disconnect_button, LEFT)
    qtbot.waitUntil(
        lambda: controller.login_window is not None and controller.main_window is None,
        timeout=SLOW,
    )
    login = controller.login_window
    assert login is not None
    assert login.username.text() == ""
    assert not alice.status()["logged_in"]


def test_the_app_opens_on_the_main_window_when_the_agent_is_logged_in(
    qtbot: QtBot, alice: AgentProcess, client: AgentClient
) -> None:
    app = AppController(client)
    app.start()
    qtbot.waitUntil(lambda: app.main_window is not None, timeout=SLOW)
    main = app.main_window
    assert main is not None and app.login_window is None
    main.hide()


def test_the_app_survives_an_agent_restart(
    qtbot: QtBot, alice: AgentProcess, controller: AppController
) -> None:
    main = controller.main_window
    assert main is not None
    qtbot.waitUntil(lambda: main.profile is not None, timeout=SLOW)
    alice.stop()
    qtbot.waitUntil(lambda: main.banner.isVisible(), timeout=SLOW)
    assert "not answering" in main.banner.text()
    alice.start()
    qtbot.waitUntil(lambda: main.banner.text() == "The agent is back.", timeout=SLOW)
    main.profile = None
    qtbot.waitUntil(lambda: main.profile is not None, timeout=SLOW)  # refreshed
