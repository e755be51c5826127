"""Checkpoints: a backup that is cancelled (by a person, the schedule's time limit or
an agent shutdown) keeps the packs it finished. It stores an index file listing them
before it stops, so the next backup of the same data finds those blobs in the index and
does not upload them again. No snapshot is written; a later prune removes the packs if
no snapshot ever uses them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from comet.agent.cancel import CancelToken
from comet.agent.errors import AgentError, CancelledError
from comet.agent.repository.blob_writer import BlobWriter


@contextlib.contextmanager
def checkpoint_on_cancel(writer: BlobWriter, cancel: CancelToken) -> Iterator[None]:
    """On CancelledError inside the block, checkpoint ``writer`` and re-raise with a
    message saying what was kept."""
    try:
        yield
    except CancelledError as e:
        try:
            with cancel.shielded():
                packs = writer.checkpoint()
        except AgentError as failure:
            raise CancelledError(f"{e}; no checkpoint was saved: {failure}") from e
        if packs:
            raise CancelledError(
                f"{e}; a checkpoint of {packs} finished pack(s) was saved for the next backup"
            ) from e
        raise
