"""``BucketS3``: the objects of every bucket in an S3-compatible object store (AWS S3,
MinIO, Ceph RGW, Wasabi, B2), shared by every server instance.

Layout under ``s3://BUCKET/PREFIX``: ``PREFIX<bucket_id>/<key>`` holds each object,
``PREFIX<bucket_id>/~trash/<key>~<deleted at, ns>`` the trash of immutable buckets
(no key contains ``~``). An upload is spooled to an anonymous local temp file while it
arrives (a killed instance leaves nothing behind anywhere), then stored with one PUT
carrying its MD5 (``Content-MD5``), which the object store checks before the object
becomes visible: a whole object or none. Immutable objects are created with
``If-None-Match: *``, and carry the start of their protection in their metadata
(``comet-written``, ns), so the protection follows the server's clock, not the
store's. Synchronous: the async store calls it from worker threads.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions

from comet.server.buckets.errors import (
    BucketStorageError,
    ImmutableObjectError,
    ObjectNotFoundError,
    ObjectStoreUnavailableError,
    RangeError,
)
from comet.server.buckets.keys import check_key, check_prefix
from comet.server.buckets.objects import ObjectEntry, PendingObject, TrashEntry, range_length

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

TRASH = "~trash/"
WRITTEN_META = "comet-written"
_PIECE = 1 << 20
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class S3BucketConfig:
    """Where the buckets live. Credentials come from the environment or a file
    (``config.s3_credentials``), never the command line; with none, boto3's own chain
    applies (instance roles, web identity on Kubernetes)."""

    endpoint: str | None
    bucket: str
    prefix: str = ""
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    # Uploads are spooled here while they arrive (default: the system temp dir).
    spool_dir: Path | None = None


def parse_store_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` -> (bucket, prefix ending in ``/`` or empty)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"a bucket store is s3://BUCKET/PREFIX, not {url!r}")
    prefix = parsed.path.strip("/")
    return parsed.netloc, f"{prefix}/" if prefix else ""


def _code(e: botocore.exceptions.ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: botocore.exceptions.ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _store_error(e: Exception, action: str, key: str) -> BucketStorageError:
    if isinstance(e, botocore.exceptions.ClientError):
        if _status(e) >= 500 or _code(e) in ("SlowDown", "ServiceUnavailable"):
            return ObjectStoreUnavailableError(
                f"cannot {action} {key!r}: the object store is unavailable ({_code(e)})"
            )
        return BucketStorageError(f"cannot {action} {key!r}: the object store said {_code(e)}")
    return ObjectStoreUnavailableError(f"cannot {action} {key!r}: the object store is unreachable")


class PendingS3:
    """An upload spooled to an anonymous temp file, hashed as it arrives."""

    def __init__(self, bucket_id: str, key: str, spool_dir: Path | None) -> None:
        self.bucket_id = bucket_id
        self.key = key
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._file: IO[bytes] | None = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115

    def write(self, data: bytes) -> None:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as e:
            raise BucketStorageError(f"cannot spool {self.key!r}: {e.strerror or e}") from e
        self._md5.update(data)
        self.size += len(data)

    def finish(self) -> None:
        assert self._file is not None
        self._file.flush()

    @property
    def content_md5(self) -> str:
        return base64.b64encode(self._md5.digest()).decode()

    def body(self) -> IO[bytes]:
        assert self._file is not None
        self._file.seek(0)
        return self._file

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class RangeReader:
    """One ranged GET, read in pieces."""

    def __init__(self, body: Any, size: int) -> None:
        self._body = body
        self.size = size

    def read(self, count: int) -> bytes:
        if self._body is None:
            return b""
        try:
            data: bytes = self._body.read(count)
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            raise ObjectStoreUnavailableError(f"reading from the object store failed: {e}") from e
        return data

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


class BucketS3:
    def __init__(self, config: S3BucketConfig) -> None:
        self.config = config
        session = boto3.session.Session()
        self._client: S3Client = session.client(
            "s3",
            endpoint_url=config.endpoint,
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            region_name=config.region,
            config=botocore.config.Config(
                max_pool_connections=32,
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                s3={"addressing_style": "path"},
            ),
        )

    def _base(self, bucket_id: str) -> str:
        return f"{self.config.prefix}{bucket_id}/"

    def _name(self, bucket_id: str, key: str) -> str:
        return self._base(bucket_id) + check_key(key)

    def _head(self, name: str, key: str) -> dict[str, Any] | None:
        try:
            return dict(self._client.head_object(Bucket=self.config.bucket, Key=name))
        except botocore.exceptions.ClientError as e:
            if _code(e) in _MISSING_CODES:
                return None
            raise _store_error(e, "stat", key) from e
        except botocore.exceptions.BotoCoreError as e:
            raise _store_error(e, "stat", key) from e

    def _names(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.config.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield dict(item)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise _store_error(e, "list", prefix) from e

    def _delete_names(self, names: builtins.list[str]) -> None:
        for start in range(0, len(names), 1000):
            batch: builtins.list[ObjectIdentifierTypeDef] = [
                {"Key": n} for n in names[start : start + 1000]
            ]
            try:
                self._client.delete_objects(
                    Bucket=self.config.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                raise _store_error(e, "delete", names[start]) from e

    # ------------------------------------------------------------- objects

    def create(self, bucket_id: str) -> None:
        pass  # prefixes need no creating

    def remove_bucket(self, bucket_id: str) -> None:
        self._delete_names([item["Key"] for item in self._names(self._base(bucket_id))])

    def begin_put(self, bucket_id: str, key: str) -> PendingS3:
        check_key(key)
        try:
            return PendingS3(bucket_id, key, self.config.spool_dir)
        except OSError as e:
            raise BucketStorageError(f"cannot spool {key!r}: {e.strerror or e}") from e

    def _put(self, pending: PendingS3, written: datetime, **extra: Any) -> None:
        self._client.put_object(
            Bucket=self.config.bucket,
            Key=self._name(pending.bucket_id, pending.key),
            Body=pending.body(),
            ContentLength=pending.size,
            ContentMD5=pending.content_md5,
            Metadata={WRITTEN_META: str(int(written.timestamp() * 1e9))},
            **extra,
        )

    def publish(self, pending: PendingObject, written: datetime) -> None:
        assert isinstance(pending, PendingS3)
        try:
            self._put(pending, written)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise _store_error(e, "write", pending.key) from e
        pending.discard()

    def publish_new(self, pending: PendingObject, written: datetime) -> bool:
        assert isinstance(pending, PendingS3)
        try:
            self._put(pending, written, IfNoneMatch="*")
        except botocore.exceptions.ClientError as e:
            if _code(e) not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise _store_error(e, "write", pending.key) from e
            if self._same_content(pending):
                pending.discard()
                return False
            raise ImmutableObjectError(
                f"{pending.key!r} already exists in this immutable vault and cannot be overwritten"
            ) from None
        except botocore.exceptions.BotoCoreError as e:
            raise _store_error(e, "write", pending.key) from e
        pending.discard()
        return True

    def _same_content(self, pending: PendingS3) -> bool:
        reader = self.open_range(pending.bucket_id, pending.key, 0, None)
        try:
            if reader.size != pending.size:
                return False
            mine = pending.body()
            while True:
                a, b = mine.read(_PIECE), reader.read(_PIECE)
                if a != b:
                    return False
                if not a:
                    return True
        finally:
            reader.close()

    def size_of(self, bucket_id: str, key: str) -> int:
        head = self._head(self._name(bucket_id, key), key)
        return int(head["ContentLength"]) if head else 0

    def stat(self, bucket_id: str, key: str) -> ObjectEntry:
        head = self._head(self._name(bucket_id, key), key)
        if head is None:
            raise ObjectNotFoundError(f"object {key!r} does not exist")
        return ObjectEntry(key, int(head["ContentLength"]), _ns(head["LastModified"]))

    def open_range(self, bucket_id: str, key: str, offset: int, length: int | None) -> RangeReader:
        name = self._name(bucket_id, key)
        if length == 0 or (length is None and offset):
            # An empty range (or one starting at the end) has no bytes to GET: check
            # the bounds against the size.
            head = self._head(name, key)
            if head is None:
                raise ObjectNotFoundError(f"object {key!r} does not exist")
            count = range_length(key, int(head["ContentLength"]), offset, length)
            if count == 0:
                return RangeReader(None, 0)
        wanted = ""
        if length is not None:
            wanted = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            wanted = f"bytes={offset}-"
        try:
            if wanted:
                reply = self._client.get_object(Bucket=self.config.bucket, Key=name, Range=wanted)
            else:
                reply = self._client.get_object(Bucket=self.config.bucket, Key=name)
        except botocore.exceptions.ClientError as e:
            if _code(e) in _MISSING_CODES:
                raise ObjectNotFoundError(f"object {key!r} does not exist") from e
            if _code(e) == "InvalidRange":
                raise RangeError(f"range starting at {offset} is beyond the end of {key!r}") from e
            raise _store_error(e, "read", key) from e
        except botocore.exceptions.BotoCoreError as e:
            raise _store_error(e, "read", key) from e
        total = _total_size(reply.get("ContentRange"), int(reply["ContentLength"]))
        try:
            count = range_length(key, total, offset, length)
        except RangeError:
            reply["Body"].close()
            raise
        return RangeReader(reply["Body"], count)

    def delete(self, bucket_id: str, key: str) -> int:
        name = self._name(bucket_id, key)
        head = self._head(name, key)
        if head is None:
            return 0
        try:
            self._client.delete_object(Bucket=self.config.bucket, Key=name)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise _store_error(e, "delete", key) from e
        return int(head["ContentLength"])

    def list(self, bucket_id: str, prefix: str) -> Iterator[ObjectEntry]:
        check_prefix(prefix)
        base = self._base(bucket_id)
        for item in self._names(base + prefix):
            key = item["Key"][len(base) :]
            if "~" in key:
                continue  # the trash, or debris no key can name
            yield ObjectEntry(key, int(item["Size"]), _ns(item["LastModified"]))

    def usage(self, bucket_id: str, *, stale_temp_seconds: float = 24 * 3600) -> int:
        # Uploads are spooled to anonymous local files: nothing stale is left in the store.
        return sum(entry.size for entry in self.list(bucket_id, ""))

    # ------------------------------------------------------------- immutable buckets

    def written_at(self, bucket_id: str, key: str) -> datetime | None:
        head = self._head(self._name(bucket_id, key), key)
        return None if head is None else _written(head)

    def restamp(self, bucket_id: str, key: str, written: datetime) -> bool:
        name = self._name(bucket_id, key)
        head = self._head(name, key)
        if head is None:
            return False
        if written > _written(head):
            # S3 cannot change metadata in place: copy the object onto itself with the
            # new date (server-side, atomic for readers).
            try:
                self._client.copy_object(
                    Bucket=self.config.bucket,
                    Key=name,
                    CopySource={"Bucket": self.config.bucket, "Key": name},
                    Metadata={WRITTEN_META: str(int(written.timestamp() * 1e9))},
                    MetadataDirective="REPLACE",
                )
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                raise _store_error(e, "protect", key) from e
        return True

    def move_to_trash(self, bucket_id: str, key: str, now: datetime) -> int:
        name = self._name(bucket_id, key)
        head = self._head(name, key)
        if head is None:
            return 0
        stamp = int(now.timestamp() * 1e9)
        target = f"{self._base(bucket_id)}{TRASH}{key}~{stamp}"
        try:
            self._client.copy_object(
                Bucket=self.config.bucket,
                Key=target,
                CopySource={"Bucket": self.config.bucket, "Key": name},
            )
            self._client.delete_object(Bucket=self.config.bucket, Key=name)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise _store_error(e, "delete", key) from e
        return int(head["ContentLength"])

    def _trash(self, bucket_id: str) -> builtins.list[tuple[TrashEntry, str]]:
        base = self._base(bucket_id) + TRASH
        found: builtins.list[tuple[TrashEntry, str]] = []
        for item in self._names(base):
            rest = item["Key"][len(base) :]
            key, sep, stamp = rest.rpartition("~")
            if not sep or not stamp.isdigit():
                continue
            when = datetime.fromtimestamp(int(stamp) / 1e9, UTC)
            found.append((TrashEntry(key, int(item["Size"]), when), item["Key"]))
        return sorted(found, key=lambda f: (f[0].key, f[0].deleted_at))

    def trash_entries(self, bucket_id: str) -> builtins.list[TrashEntry]:
        return [entry for entry, _name in self._trash(bucket_id)]

    def purge_trash(self, bucket_id: str, deleted_before: datetime) -> int:
        names = [n for e, n in self._trash(bucket_id) if e.deleted_at < deleted_before]
        self._delete_names(names)
        return len(names)

    def restore(self, bucket_id: str, key: str) -> int:
        candidates = [(e, n) for e, n in self._trash(bucket_id) if e.key == key]
        if not candidates:
            return 0
        entry, source = candidates[-1]
        target = self._name(bucket_id, key)
        if self._head(target, key) is not None:
            return 0
        try:
            self._client.copy_object(
                Bucket=self.config.bucket,
                Key=target,
                CopySource={"Bucket": self.config.bucket, "Key": source},
            )
            self._client.delete_object(Bucket=self.config.bucket, Key=source)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise _store_error(e, "restore", key) from e
        return entry.size

    def last_change(self, bucket_id: str) -> datetime | None:
        newest: datetime | None = None
        for entry in self.list(bucket_id, ""):
            written = self.written_at(bucket_id, entry.key)
            if written is not None and (newest is None or written > newest):
                newest = written
        for trashed in self.trash_entries(bucket_id):
            if newest is None or trashed.deleted_at > newest:
                newest = trashed.deleted_at
        return newest


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000) * 1000


def _written(head: dict[str, Any]) -> datetime:
    stamp = head.get("Metadata", {}).get(WRITTEN_META, "")
    if stamp.isdigit():
        return datetime.fromtimestamp(int(stamp) / 1e9, UTC)
    when: datetime = head["LastModified"]
    return when


def _total_size(content_range: str | None, length: int) -> int:
    """The object's size from ``bytes a-b/total``."""
    if content_range and "/" in content_range:
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
    return length
