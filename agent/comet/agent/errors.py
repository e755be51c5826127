"""The agent's error root. Every error a person may see carries a stable ``code``.

Codes are registered here once and never reused, so logs and scripts can match them.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""

    code = "agent"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
