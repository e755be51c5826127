"""Showing a two-factor enrolment on a terminal (the otpauth URI, the secret and a QR
code an authenticator app can scan) and reading a code; shared by ``comet`` and
``comet-admin``."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, TextIO

_CODE = re.compile(r"^\d{6}$")


def show_enrolment(secret: str, uri: str, *, out: TextIO = sys.stdout) -> None:
    # segno (with the http, email and xml modules it pulls in) is loaded here, on the
    # one command that draws a QR code, not at every start of the CLI.
    import segno

    print("Scan this QR code with an authenticator app:", file=out)
    segno.make(uri, error="m").terminal(out=out, compact=True)
    print(f"or enter the secret by hand: {secret}", file=out)
    print(f"otpauth URI: {uri}", file=out)
    out.flush()


def read_code(*, from_stdin: bool, what: str) -> str:
    """A 6-digit code: one line of stdin (``--code-stdin``, for scripts) or typed at a
    prompt. Raises ValueError with a message a person can act on."""
    if from_stdin:
        line = sys.stdin.readline()
    else:
        try:
            line = input(f"{what}: ")
        except EOFError:
            line = ""
    code = line.strip().replace(" ", "")
    if not _CODE.match(code):
        raise ValueError(f"{what}: expected the 6 digits the authenticator app shows")
    return code


def add_totp_parsers(
    sub: Any,
    *,
    tool: str,
    enable: Callable[..., None],
    confirm: Callable[..., None],
    disable: Callable[..., None],
) -> Any:
    """The ``totp enable|confirm|disable`` commands of ``tool``; returns their parser."""
    totp = sub.add_parser("totp", help="two-factor authentication for your account")
    cmds = totp.add_subparsers(dest="sub", required=True)
    begin = cmds.add_parser("enable", help="show a new secret (QR code), then turn 2FA on")
    begin.add_argument("--code-stdin", action="store_true", help="read the code from stdin")
    begin.add_argument(
        "--begin-only",
        action="store_true",
        help=f"only show the secret; finish later with '{tool} totp confirm'",
    )
    begin.add_argument("--json", action="store_true", help="print the secret and URI as JSON")
    begin.set_defaults(func=enable)
    finish = cmds.add_parser("confirm", help="finish 'enable --begin-only' with a code")
    finish.add_argument("--code-stdin", action="store_true")
    finish.set_defaults(func=confirm)
    off = cmds.add_parser("disable", help="turn 2FA off (needs a current code)")
    off.add_argument("--code-stdin", action="store_true")
    off.set_defaults(func=disable)
    return cmds
