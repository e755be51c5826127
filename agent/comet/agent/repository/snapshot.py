"""Snapshot records: the commit point of a backup (docs/format.md, "Snapshots")."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from comet.agent.errors import IntegrityError, UnsupportedFormatError
from comet.agent.repository import json_doc

SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class Snapshot:
    """What one backup job committed. ``tree`` is the root tree blob id."""

    item_id: str
    device_id: str
    hostname: str
    tree: bytes
    start_ns: int
    end_ns: int
    paths: tuple[str, ...] = ()
    program: tuple[str, ...] | None = None
    tags: tuple[str, ...] = ()
    parent: bytes | None = None
    files: int = 0
    dirs: int = 0
    total_bytes: int = 0
    uploaded_bytes: int = 0
    blobs: int = 0
    new_blobs: int = 0
    warnings: int = 0
    id: bytes = field(default=b"", compare=False)

    def encode(self) -> bytes:
        doc: dict[str, Any] = asdict(self)
        del doc["id"]
        doc["v"] = SNAPSHOT_VERSION
        doc["tree"] = self.tree.hex()
        doc["parent"] = self.parent.hex() if self.parent else None
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, snapshot_id: bytes) -> Snapshot:
        what = f"snapshot {snapshot_id.hex()}"
        try:
            doc = json_doc.parse(data)
            version = doc.pop("v")
        except (ValueError, KeyError, AttributeError) as e:
            raise IntegrityError(f"{what} is malformed ({e})") from e
        if version != SNAPSHOT_VERSION:
            raise UnsupportedFormatError(f"{what} has unknown version {version}")
        try:
            doc["tree"] = bytes.fromhex(doc["tree"])
            doc["parent"] = bytes.fromhex(doc["parent"]) if doc.get("parent") else None
            doc["paths"] = tuple(doc.get("paths", ()))
            doc["tags"] = tuple(doc.get("tags", ()))
            if doc.get("program") is not None:
                doc["program"] = tuple(doc["program"])
            return cls(**doc, id=snapshot_id)
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{what} is malformed ({e})") from e
