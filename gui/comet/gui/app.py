"""``comet-gui``: the Comet Backup desktop app.

Starts on the main window when the agent is logged in and not locked, else on the
login window (with the username filled in only when locked). ``--screenshots DIR``
renders every main screen against the running agent and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PyQt6.QtCore import QObject
from PyQt6.QtWidgets import QApplication

from comet.gui import theme
from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.login_window import LoginWindow, registration_text
from comet.gui.main_window import MainWindow
from comet.gui.records import AgentStatus, LoginResult, Profile
from comet.gui.unlock_dialog import UnlockDialog

PROG = "comet-gui"


def socket_path(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get("COMET_AGENT_SOCKET")
    if env:
        return Path(env)
    from comet.agent.config import default_socket_path

    return default_socket_path()


class AppController(QObject):
    """Decides which window shows, and switches on login, Lock and Disconnect."""

    def __init__(self, client: AgentClient) -> None:
        super().__init__()
        self.client = client
        self.login_window: LoginWindow | None = None
        self.main_window: MainWindow | None = None
        self.unlock_dialog: UnlockDialog | None = None
        self._server = ""

    def start(self) -> None:
        self.client.status().then(self.route, self._agent_down)

    def route(self, status: AgentStatus) -> None:
        if status.logged_in and not status.locked:
            # The policy may require the password before the app opens.
            self.client.get_profile(refetch=False).then(
                lambda profile: self._open_checked(status, profile),
                lambda _error: self._open_checked(status, None),
            )
        else:
            self.show_login(status, username=status.username if status.locked else "")

    def _open_checked(self, status: AgentStatus, profile: Profile | None) -> None:
        if profile is None or not profile.policy.require_password_to_open_app:
            self.show_main(status)
            return
        dialog = UnlockDialog(status.username)
        self.unlock_dialog = dialog

        def check(password: str) -> None:
            self.client.unlock(password).then(opened, refused)

        def opened(_status: AgentStatus) -> None:
            dialog.accept()
            self.unlock_dialog = None
            self.show_main(status)

        def refused(error: ApiError) -> None:
            wrong = "wrong password" in error.message.lower()
            dialog.show_error("Wrong password." if wrong else error.message)

        def cancelled() -> None:
            app = QApplication.instance()
            if app is not None and self.main_window is None:
                app.quit()

        dialog.password_entered.connect(check)
        dialog.rejected.connect(cancelled)
        dialog.show()

    def _agent_down(self, error: ApiError) -> None:
        window = self.show_login(AgentStatus(), username="")
        window.show_message(error.message)

    def show_login(self, status: AgentStatus, *, username: str) -> LoginWindow:
        window = LoginWindow(self.client, status, username=username)
        window.logged_in.connect(self._logged_in)
        old = self.login_window
        self.login_window = window
        window.show()
        if old is not None:
            old.close()
            old.deleteLater()
        return window

    def _logged_in(self, result: LoginResult) -> None:
        main = self.show_main(result.status)
        if result.device_registered_now:
            main.show_banner(registration_text(result.status))
        if self.login_window is not None:
            self.login_window.hide()
            self.login_window.deleteLater()
            self.login_window = None

    def show_main(self, status: AgentStatus) -> MainWindow:
        self._server = status.server
        window = MainWindow(self.client, status)
        window.locked.connect(self._locked)
        window.disconnected.connect(self._disconnected)
        window.closed.connect(self._closed)
        self.main_window = window
        window.show()
        return window

    def _locked(self, username: str) -> None:
        self.main_window = None
        self.show_login(self.client.status_snapshot, username=username)

    def _disconnected(self) -> None:
        self.main_window = None
        # Nothing filled in but the server address the user will most likely want again.
        self.show_login(AgentStatus(server=self._server), username="")

    def _closed(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.quit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The Comet Backup desktop app.")
    parser.add_argument("--socket", type=Path, default=None, help="the agent's unix socket")
    parser.add_argument(
        "--screenshots",
        type=Path,
        metavar="DIR",
        help="save a PNG of every main screen into DIR, then exit",
    )
    parser.add_argument(
        "--size",
        type=screen_size,
        action="append",
        metavar="WxH",
        help="with --screenshots: the window size (repeatable; several sizes go to "
        "DIR/WxH/; default 1024x700)",
    )
    return parser


def screen_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1024x700")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    app = QApplication(sys.argv[:1])
    app.setApplicationName("Comet Backup")
    theme.install(app)
    client = AgentClient(socket_path(args.socket))
    try:
        if args.screenshots is not None:
            from comet.gui.screenshots import ScreenshotRun

            sizes = args.size or [(1024, 700)]
            for width, height in sizes:
                out = args.screenshots
                if len(sizes) > 1:
                    out = out / f"{width}x{height}"
                code = ScreenshotRun(client, out, (width, height)).run()
                if code:
                    return code
            return 0
        controller = AppController(client)
        controller.start()
        return app.exec()
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
