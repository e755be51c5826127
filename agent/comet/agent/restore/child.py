"""``ChildProcess``: a program fed through its stdin by a restore (a restore command,
or ``tar2sqfs``), with the tail of its stderr kept for the error message.

stderr is drained by a thread so a chatty program can never block on it while the
restore blocks on its stdin. A program that stops reading early is not an error by
itself; its exit status decides.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from comet.agent.errors import RestoreProgramError
from comet.agent.process_group import stop_process_group

STDERR_TAIL = 2048


class ChildProcess:
    """One running program. ``what`` names it in errors (``command 'x' for /a/b``)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        what: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.what = what
        self._tail = bytearray()
        self._stopped_reading = False
        try:
            self._proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                pass_fds=tuple(pass_fds),
                start_new_session=True,  # stopping it reaches what its shell started
            )
        except OSError as e:
            raise RestoreProgramError(f"{what} could not be started: {e}") from e
        assert self._proc.stdin is not None and self._proc.stderr is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._reader = threading.Thread(
            target=self._drain, args=(self._proc.stderr,), name="restore-stderr", daemon=True
        )
        self._reader.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(stream.fileno(), 65536):
                self._tail += chunk
                del self._tail[:-STDERR_TAIL]

    def stderr_tail(self) -> str:
        return self._tail.decode("utf-8", "replace").strip()

    def _failure(self, code: int) -> RestoreProgramError:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = self.stderr_tail()
        return RestoreProgramError(f"{self.what} {how}" + (f": {tail}" if tail else ""))

    def write(self, data: bytes) -> None:
        """Feed ``data`` to stdin. If the program stopped reading, wait for it: a
        non-zero exit raises RestoreProgramError, otherwise the rest is discarded."""
        if not self._stopped_reading:
            self._feed(self._stdin.write, data)

    def flush(self) -> None:
        """Push buffered input to the program (same rules as ``write``)."""
        if not self._stopped_reading:
            self._feed(lambda _: self._stdin.flush(), b"")

    def _feed(self, op: Callable[[bytes], object], data: bytes) -> None:
        try:
            op(data)
        except BrokenPipeError:
            self._stopped_reading = True
            code = self._proc.wait()
            self._reader.join()
            if code != 0:
                raise self._failure(code) from None
        except OSError as e:
            raise RestoreProgramError(f"cannot write to {self.what}: {e}") from e

    def finish(self) -> None:
        """Close stdin and wait for the exit. Raises RestoreProgramError on a non-zero
        exit, with the exit code and the last ~2 KB of stderr."""
        with contextlib.suppress(BrokenPipeError):
            self._stdin.close()
        code = self._proc.wait()
        self._reader.join()
        if code != 0:
            raise self._failure(code)

    def stop(self) -> None:
        """Stop the program's process group (SIGTERM, then SIGKILL after a grace), as
        when the job is cancelled; a blocked ``write`` then fails. Never raises."""
        stop_process_group(self._proc)

    def kill(self) -> None:
        """Stop the program at once (a failed restore). Never raises."""
        with contextlib.suppress(OSError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()
        with contextlib.suppress(OSError):
            self._proc.wait()
        self._reader.join(timeout=5)
