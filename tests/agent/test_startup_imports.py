"""What an idle agent carries: the service imports no ``cryptography`` (~10 MiB
resident); a job imports it when it first derives a key or seals a blob."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import comet.agent.service
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "cryptography")
print(",".join(loaded))
from comet.agent.repository.crypto import MasterKeys, Sealer
Sealer(MasterKeys.generate()).seal(b"p", b"body")
print("cryptography" in sys.modules)
"""


def test_agent_service_starts_without_cryptography() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    idle, after_job = result.stdout.splitlines()
    assert idle == ""
    assert after_job == "True"


CLI_CHECK = """
import contextlib, io, sys
sys.argv = ["comet", "--help"]
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    import comet.agent.client_cli.__main__
heavy = ("segno", "email", "http", "cryptography", "sqlite3", "comet.agent.totp_link")
print(",".join(sorted(m for m in sys.modules if m.startswith(heavy))))
"""


def test_cli_starts_without_what_only_rare_commands_need() -> None:
    """Every ``comet`` command pays the CLI's imports before it talks to the agent
    (a third of an unchanged backup of a few files): the QR code library and the
    server transport load only for ``comet totp``."""
    result = subprocess.run(
        [sys.executable, "-c", CLI_CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
