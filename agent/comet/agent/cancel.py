"""Cooperative cancellation for engine jobs (backup, restore, maintenance).

A job checks its token at file and chunk boundaries; cancelling from another thread makes
the next check raise ``CancelledError``. Code that blocks (a rate limiter's sleep, a child
process) waits on the token instead of sleeping, or registers a callback that unblocks it.
Must not import grpc, asyncio or Qt.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from comet.agent.errors import CancelledError

log = logging.getLogger(__name__)


class CancelToken:
    """A thread-safe, one-way cancellation flag."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = "cancelled"
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._shield = threading.local()

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the job to stop at its next check and run the registered callbacks.
        Idempotent; the first reason wins."""
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a callback must not stop the others
                log.exception("cancel callback failed")

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason

    def check(self) -> None:
        """Raise CancelledError if cancellation was requested (never inside
        ``shielded`` on this thread)."""
        if self._event.is_set() and not self._shielded():
            raise CancelledError(f"job {self._reason}")

    def sleep(self, seconds: float) -> None:
        """Sleep, but raise CancelledError as soon as the job is cancelled. Inside
        ``shielded`` a cancelled token returns at once (cleanup is not throttled)."""
        if self._event.wait(seconds):
            if self._shielded():
                return
            self.check()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` (from the cancelling thread) when the token is cancelled, or
        now if it already is. Returns a function that unregisters it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """On this thread, let cleanup after a cancel (writing a checkpoint) run:
        ``check`` does not raise and ``sleep`` does not wait."""
        self._shield.on = True
        try:
            yield
        finally:
            self._shield.on = False

    def _shielded(self) -> bool:
        return bool(getattr(self._shield, "on", False))
