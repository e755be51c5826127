"""The repository: the versioned, encrypted, deduplicated format a Storage Vault holds.

Specified in ``docs/format.md``. Layers: ``format`` (magic, versions, algorithm ids),
``crypto`` (keys, blob sealing), ``chunker``, ``pack``, ``index``, ``tree``, ``snapshot``,
``lock`` and ``repository`` (the facade). Synchronous; must not import grpc, asyncio or Qt.
"""

from comet.agent.repository.repository import Repository

__all__ = ["Repository"]
