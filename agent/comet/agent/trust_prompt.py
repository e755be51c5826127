"""The terminal question a first login over https asks about a certificate that no
authority vouches for: show its fingerprint, trust it only on an explicit "y"."""

from __future__ import annotations

import sys
from typing import TextIO


def ask_to_trust(
    url: str, fingerprint: str, *, stdin: TextIO | None = None, stderr: TextIO | None = None
) -> bool:
    """Whether the person at the terminal confirms ``fingerprint`` for ``url``.
    Anything but y/yes (including end of input) is a no."""
    read = stdin or sys.stdin
    write = stderr or sys.stderr
    write.write(
        f"The server at {url} presents a certificate that no authority this computer "
        f"trusts has signed.\n  SHA-256 fingerprint: {fingerprint}\n"
        "Compare it with the fingerprint from the server's administrator (comet-server "
        "prints it when it starts).\nTrust this server? [y/N] "
    )
    write.flush()
    answer = read.readline().strip().lower()
    return answer in ("y", "yes")
