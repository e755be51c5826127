"""StorageService: the objects of "Comet Server" vault buckets. Each call names its
bucket and proves it holds a device's credential for that bucket in metadata; nothing
else is accepted, so a device token opens no bucket, one bucket's credential opens no
other, and a revoked device's credential opens nothing (checked on every call, and
again while a long upload commits or a download streams)."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from comet.server.buckets.errors import BucketAuthError
from comet.server.buckets.store import CHUNK_SIZE, BucketRecord, BucketStore
from comet.server.errors import InvalidRequestError, ServerError
from comet.server.rpc.errors import ERROR_CODE_KEY, handles_errors, status_for
from comet.v1 import storage_pb2, storage_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]
BUCKET_HEADER = "x-comet-bucket"
BUCKET_KEY_HEADER = "x-comet-bucket-key"
# Deletes in immutable buckets also need a grant (comet.server.buckets.grants).
DELETE_GRANT_HEADER = "x-comet-delete-grant"
# A download in progress checks its credential again this often, so revoking a device
# also ends the streams it has open.
RECHECK_SECONDS = 0.5

_S = TypeVar("_S")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


def _streams_errors(
    fn: Callable[[_S, _Req, Ctx], AsyncIterator[_Resp]],
) -> Callable[[_S, _Req, Ctx], AsyncIterator[_Resp]]:
    """``handles_errors`` for server-streaming methods."""

    @functools.wraps(fn)
    async def wrapper(self: _S, request: _Req, context: Ctx) -> AsyncIterator[_Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except ServerError as e:
            context.set_trailing_metadata(((ERROR_CODE_KEY, e.code),))
            await context.abort(status_for(e), e.message)

    return wrapper


async def _prepend(first: _Req, rest: AsyncIterator[_Req]) -> AsyncIterator[_Req]:
    yield first
    async for item in rest:
        yield item


class StorageService(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, buckets: BucketStore) -> None:
        self._buckets = buckets

    async def _bucket(self, context: Ctx) -> BucketRecord:
        headers = {
            key: value
            for key, value in context.invocation_metadata() or ()
            if isinstance(value, str)
        }
        bucket_id = headers.get(BUCKET_HEADER, "")
        key = headers.get(BUCKET_KEY_HEADER, "")
        if not bucket_id or not key:
            raise BucketAuthError(
                f"this call needs bucket credentials ({BUCKET_HEADER}, {BUCKET_KEY_HEADER})"
            )
        return await self._buckets.authenticate(bucket_id, key)

    @handles_errors
    async def Put(
        self, request_iterator: AsyncIterator[storage_pb2.PutObjectChunk], context: Ctx
    ) -> storage_pb2.PutObjectReply:
        bucket = await self._bucket(context)
        messages = aiter(request_iterator)
        try:
            first = await anext(messages)
        except StopAsyncIteration:
            raise InvalidRequestError("a put needs at least one message (with the key)") from None

        async def data() -> AsyncIterator[bytes]:
            async for message in _prepend(first, messages):
                if len(message.data) > CHUNK_SIZE:
                    raise InvalidRequestError(f"put messages carry at most {CHUNK_SIZE} bytes")
                if message.data:
                    yield message.data

        size = await self._buckets.put(bucket, first.key, first.total_size, data())
        return storage_pb2.PutObjectReply(size=size)

    @_streams_errors
    async def Get(
        self, request: storage_pb2.GetObjectRequest, context: Ctx
    ) -> AsyncIterator[storage_pb2.ObjectChunk]:
        bucket = await self._bucket(context)
        length = None if request.to_end else request.length
        checked = time.monotonic()
        async for piece in await self._buckets.read(bucket, request.key, request.offset, length):
            if time.monotonic() - checked >= RECHECK_SECONDS:
                await self._buckets.recheck(bucket)  # revoked mid-download: stop
                checked = time.monotonic()
            yield storage_pb2.ObjectChunk(data=piece)

    @handles_errors
    async def Stat(
        self, request: storage_pb2.StatObjectRequest, context: Ctx
    ) -> storage_pb2.ObjectStat:
        bucket = await self._bucket(context)
        entry = await self._buckets.stat(bucket, request.key)
        reply = storage_pb2.ObjectStat(key=entry.key, size=entry.size, mtime_ns=entry.mtime_ns)
        until = await self._buckets.protected_until(bucket, request.key)
        if until is not None:
            reply.protected_until.FromDatetime(until)
        return reply

    @handles_errors
    async def ExtendProtection(
        self, request: storage_pb2.ExtendProtectionRequest, context: Ctx
    ) -> storage_pb2.ObjectStat:
        bucket = await self._bucket(context)
        until = await self._buckets.extend_protection(bucket, request.key)
        entry = await self._buckets.stat(bucket, request.key)
        reply = storage_pb2.ObjectStat(key=entry.key, size=entry.size)
        if until is not None:
            reply.protected_until.FromDatetime(until)
        return reply

    @handles_errors
    async def Delete(
        self, request: storage_pb2.DeleteObjectRequest, context: Ctx
    ) -> storage_pb2.DeleteObjectReply:
        bucket = await self._bucket(context)
        grant = next(
            (
                value
                for key, value in context.invocation_metadata() or ()
                if key == DELETE_GRANT_HEADER and isinstance(value, str)
            ),
            "",
        )
        await self._buckets.delete(bucket, request.key, grant)
        return storage_pb2.DeleteObjectReply()

    @_streams_errors
    async def List(
        self, request: storage_pb2.ListObjectsRequest, context: Ctx
    ) -> AsyncIterator[storage_pb2.ObjectStat]:
        bucket = await self._bucket(context)
        for entry in await self._buckets.list_objects(bucket, request.prefix):
            yield storage_pb2.ObjectStat(key=entry.key, size=entry.size, mtime_ns=entry.mtime_ns)
