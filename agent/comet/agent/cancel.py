"""Cooperative cancellation for engine jobs (backup, restore, maintenance).

A job checks its token at file and chunk boundaries; cancelling from another thread makes
the next check raise ``CancelledError``. Must not import grpc, asyncio or Qt.
"""

from __future__ import annotations

import threading

from comet.agent.errors import CancelledError


class CancelToken:
    """A thread-safe, one-way cancellation flag."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the job to stop at its next check. Idempotent; the first reason wins."""
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise CancelledError if cancellation was requested."""
        if self._event.is_set():
            raise CancelledError(f"job {self._reason}")
