"""``CometStorage``: a vault in a bucket hosted by a Comet Server, reached through its
StorageService. The only backend that speaks gRPC; it does so over a synchronous
channel, which is thread-safe, so one instance serves the engine's worker threads."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from comet.agent.storage.base import (
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    TransientStorageError,
    check_key,
    check_prefix,
)
from comet.agent.transport import rpc_error_message, sync_channel
from comet.v1 import storage_pb2, storage_pb2_grpc

# Object data travels in messages of at most this size (see storage.proto).
CHUNK_SIZE = 1024 * 1024
# The server's stable error codes (trailing metadata "comet-error-code").
_ERROR_CODE_KEY = "comet-error-code"
_INVALID_KEY = "bucket.invalid_key"
_PROTECTED = "bucket.protected"
log = logging.getLogger(__name__)

_TRANSIENT = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
)


@dataclass(frozen=True)
class CometStorageConfig:
    server_url: str
    bucket_id: str
    bucket_key: str
    ca_pem: bytes | None = None
    # Each call may take this long, plus one second per MiB it moves.
    timeout_seconds: float = 60.0
    # Immutable buckets: a delete grant from the server (retention an administrator
    # started, or the user re-entering their password); without one, deletes outside
    # locks/ are refused by the server.
    delete_grant: str = ""


def _error_code(error: grpc.RpcError) -> str:
    if not isinstance(error, grpc.Call):
        return ""
    for key, value in error.trailing_metadata() or ():
        if key == _ERROR_CODE_KEY and isinstance(value, str):
            return value
    return ""


def _storage_error(error: grpc.RpcError, action: str, key: str) -> StorageError:
    code = error.code() if isinstance(error, grpc.Call) else None
    message = rpc_error_message(error)
    if code == grpc.StatusCode.NOT_FOUND:
        return ObjectNotFoundError(f"object {key!r} does not exist")
    if code in _TRANSIENT:
        return TransientStorageError(f"cannot {action} {key!r} on the Comet Server: {message}")
    if code == grpc.StatusCode.INVALID_ARGUMENT and _error_code(error) == _INVALID_KEY:
        return InvalidKeyError(message)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return StorageError(f"cannot {action} {key!r}: {message}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return StorageError(
            f"the Comet Server refused this vault's bucket credentials ({message}); this device"
            " may have been revoked (log in again after an administrator allows it), or the"
            " bucket deleted with its account"
        )
    return StorageError(f"cannot {action} {key!r} on the Comet Server: {message}")


def _info(reply: storage_pb2.ObjectStat) -> ObjectInfo:
    # Servers before the mtime field leave it unset: prune then keeps unindexed packs.
    mtime = reply.mtime_ns if reply.HasField("mtime_ns") else None
    return ObjectInfo(reply.key, reply.size, mtime)


class CometStorage:
    def __init__(self, config: CometStorageConfig) -> None:
        self._config = config
        self._channel = sync_channel(config.server_url, ca_pem=config.ca_pem)
        self._stub = storage_pb2_grpc.StorageServiceStub(self._channel)
        self._metadata = (
            ("x-comet-bucket", config.bucket_id),
            ("x-comet-bucket-key", config.bucket_key),
        )
        self._closed = False

    def _timeout(self, size: int = 0) -> float:
        return self._config.timeout_seconds + size / CHUNK_SIZE

    def put(self, key: str, data: bytes) -> None:
        check_key(key)
        view = memoryview(data)

        def messages() -> Iterator[storage_pb2.PutObjectChunk]:
            yield storage_pb2.PutObjectChunk(
                key=key, total_size=len(data), data=bytes(view[:CHUNK_SIZE])
            )
            for start in range(CHUNK_SIZE, len(data), CHUNK_SIZE):
                yield storage_pb2.PutObjectChunk(data=bytes(view[start : start + CHUNK_SIZE]))

        try:
            reply = self._stub.Put(
                messages(), metadata=self._metadata, timeout=self._timeout(len(data))
            )
        except grpc.RpcError as e:
            raise _storage_error(e, "write", key) from e
        if reply.size != len(data):
            raise StorageError(f"the Comet Server stored {reply.size} of {len(data)} bytes")

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        check_key(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative range offset={offset} length={length}")
        request = storage_pb2.GetObjectRequest(
            key=key, offset=offset, length=length or 0, to_end=length is None
        )
        # A whole-object read's size is unknown here: allow it the base time, and
        # more when the caller named a length.
        chunks: Iterable[storage_pb2.ObjectChunk] = self._stub.Get(
            request, metadata=self._metadata, timeout=self._timeout(length or 0) * 4
        )
        try:
            data = b"".join(chunk.data for chunk in chunks)
        except grpc.RpcError as e:
            raise _storage_error(e, "read", key) from e
        if length is not None and len(data) != length:
            raise StorageError(f"short read of {key!r}: wanted {length} bytes, got {len(data)}")
        return data

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        try:
            reply = self._stub.Stat(
                storage_pb2.StatObjectRequest(key=key),
                metadata=self._metadata,
                timeout=self._timeout(),
            )
        except grpc.RpcError as e:
            raise _storage_error(e, "stat", key) from e
        return _info(reply)

    def protected_until(self, key: str) -> datetime | None:
        """Until when the server keeps the object from deletion (immutable buckets);
        None when it does not."""
        check_key(key)
        try:
            reply = self._stub.Stat(
                storage_pb2.StatObjectRequest(key=key),
                metadata=self._metadata,
                timeout=self._timeout(),
            )
        except grpc.RpcError as e:
            raise _storage_error(e, "stat", key) from e
        if not reply.HasField("protected_until"):
            return None
        return reply.protected_until.ToDatetime(tzinfo=UTC)

    def extend_protection(self, key: str, until: datetime) -> None:
        """Ask the server to protect the object a whole protection period from now
        (the server decides the date: a device can lengthen a protection, never
        shorten it)."""
        check_key(key)
        try:
            self._stub.ExtendProtection(
                storage_pb2.ExtendProtectionRequest(key=key),
                metadata=self._metadata,
                timeout=self._timeout(),
            )
        except grpc.RpcError as e:
            raise _storage_error(e, "protect", key) from e

    def delete(self, key: str) -> None:
        check_key(key)
        try:
            metadata: tuple[tuple[str, str], ...] = self._metadata
            if self._config.delete_grant:
                metadata = (*metadata, ("x-comet-delete-grant", self._config.delete_grant))
            self._stub.Delete(
                storage_pb2.DeleteObjectRequest(key=key),
                metadata=metadata,
                timeout=self._timeout(),
            )
        except grpc.RpcError as e:
            if _error_code(e) == _PROTECTED:
                # Immutable bucket, object still within its protection: it stays, and
                # a later retention pass removes it once the protection has ended.
                log.info("%s stays: %s", key, rpc_error_message(e))
                return
            raise _storage_error(e, "delete", key) from e

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        replies: Iterable[storage_pb2.ObjectStat] = self._stub.List(
            storage_pb2.ListObjectsRequest(prefix=prefix),
            metadata=self._metadata,
            timeout=self._timeout() * 5,
        )
        try:
            for reply in replies:
                yield _info(reply)
        except grpc.RpcError as e:
            raise _storage_error(e, "list", prefix or "/") from e

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        return ()  # the server stores each object atomically and owns its temp files

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._channel.close()
