"""``S3Storage``: a vault under a prefix of an S3 (or S3-compatible) bucket.

botocore's own retries are switched off: ``RetryingStorage`` is the one place that
retries, and this module only says which failures are worth retrying.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    SSLError,
)

from comet.agent.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    TransientStorageError,
    check_key,
    check_prefix,
    check_range,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
    }
)
_ACCESS_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)

# Building a boto3 Session loads the service models (~0.1 s), so all S3Storage objects
# share one. Sessions are not thread-safe, hence the lock around making clients; the
# clients themselves are.
_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def _session() -> boto3.session.Session:
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session()
    return _SESSION


@dataclass(frozen=True)
class S3Config:
    """Where the vault lives. ``prefix`` is prepended to every key (``"vault1/"`` or
    ``""``); ``endpoint_url`` is None for AWS itself."""

    endpoint_url: str | None
    bucket: str
    prefix: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    _: KW_ONLY
    create_bucket: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    list_page_size: int = 1000  # some S3-compatible services allow fewer keys per page


class S3Storage:
    """Objects in an S3 bucket. One boto3 client, which is safe to share between threads."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        prefix = config.prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        check_prefix(prefix)
        self._prefix = prefix
        self._bucket = config.bucket
        self._client: S3Client
        with _SESSION_LOCK:
            self._client = _session().client(
                "s3",
                endpoint_url=config.endpoint_url,
                aws_access_key_id=config.access_key,
                aws_secret_access_key=config.secret_key,
                region_name=config.region,
                config=Config(
                    s3={"addressing_style": "path"},
                    connect_timeout=config.connect_timeout,
                    read_timeout=config.read_timeout,
                    retries={"total_max_attempts": 1},
                    max_pool_connections=16,
                    # Many S3-compatible servers reject the checksum trailers newer botocore
                    # sends by default; the repository format verifies its own hashes.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        if config.create_bucket:
            self._create_bucket()

    def _create_bucket(self) -> None:
        try:
            if self.config.region == "us-east-1":
                self._client.create_bucket(Bucket=self._bucket)
            else:
                self._client.create_bucket(
                    Bucket=self._bucket,
                    CreateBucketConfiguration={"LocationConstraint": self.config.region},  # type: ignore[typeddict-item]
                )
        except ClientError as e:
            if _error_code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._wrap(e, "create bucket", self._bucket) from e
        except BotoCoreError as e:
            raise self._wrap(e, "create bucket", self._bucket) from e

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        try:
            self._client.put_object(Bucket=self._bucket, Key=name, Body=data)
        except (ClientError, BotoCoreError) as e:
            raise self._wrap(e, "write", key) from e

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        name = self._name(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative range offset={offset} length={length}")
        if length == 0 or (offset > 0 and length is None):
            # S3 answers an empty range (or one starting at the end) with 416, and a
            # range past the end with a silently shortened body: check against the size.
            size = self.stat(key).size
            count = check_range(key, size, offset, length)
            if count == 0:
                return b""
            length = count
        try:
            if length is None:
                response = self._client.get_object(Bucket=self._bucket, Key=name)
            else:
                byte_range = f"bytes={offset}-{offset + length - 1}"
                response = self._client.get_object(Bucket=self._bucket, Key=name, Range=byte_range)
            data = response["Body"].read()
        except ClientError as e:
            if _error_code(e) == "InvalidRange":
                size = self.stat(key).size
                check_range(key, size, offset, length)
            raise self._wrap(e, "read", key) from e
        except BotoCoreError as e:
            raise self._wrap(e, "read", key) from e
        if length is not None and len(data) != length:
            size = self.stat(key).size
            check_range(key, size, offset, length)
            raise TransientStorageError(
                f"short read of {key!r}: wanted {length} bytes, got {len(data)}"
            )
        return data

    def stat(self, key: str) -> ObjectInfo:
        name = self._name(key)
        try:
            response = self._client.head_object(Bucket=self._bucket, Key=name)
        except (ClientError, BotoCoreError) as e:
            raise self._wrap(e, "stat", key) from e
        return ObjectInfo(key, response["ContentLength"], _storage_ns(response["LastModified"]))

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._client.delete_object(Bucket=self._bucket, Key=name)
        except ClientError as e:
            if _error_code(e) not in _NOT_FOUND_CODES:
                raise self._wrap(e, "delete", key) from e
        except BotoCoreError as e:
            raise self._wrap(e, "delete", key) from e

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        return self._pages(prefix)

    def _pages(self, prefix: str) -> Iterator[ObjectInfo]:
        cut = len(self._prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            pages = paginator.paginate(
                Bucket=self._bucket,
                Prefix=self._prefix + prefix,
                PaginationConfig={"PageSize": self.config.list_page_size},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"][cut:], item["Size"], _storage_ns(item["LastModified"])
                    )
        except (ClientError, BotoCoreError) as e:
            raise self._wrap(e, "list", prefix or "/") from e

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        return ()  # a PUT is atomic on S3: interrupted uploads leave nothing listed

    def close(self) -> None:
        self._client.close()

    def _name(self, key: str) -> str:
        return self._prefix + check_key(key)

    def _wrap(self, e: ClientError | BotoCoreError, action: str, key: str) -> StorageError:
        """Convert a botocore error raised while doing ``action`` on ``key``."""
        where = f"s3://{self._bucket}/{self._prefix}"
        if isinstance(e, ClientError):
            code = _error_code(e)
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _NOT_FOUND_CODES:
                return ObjectNotFoundError(f"object {key!r} does not exist in {where}")
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return TransientStorageError(f"cannot {action} {key!r} in {where}: {code} ({e})")
            if code == "NoSuchBucket":
                return StorageError(
                    f"bucket {self._bucket!r} does not exist; create it or fix the vault's bucket"
                )
            if code in _ACCESS_CODES or status == 403:
                return StorageError(
                    f"cannot {action} {key!r} in {where}: access denied ({code});"
                    " check the access key, secret key and the bucket policy"
                )
            return StorageError(f"cannot {action} {key!r} in {where}: {code} ({e})")
        if isinstance(e, NoCredentialsError):
            return StorageError("no S3 credentials configured for the vault")
        if isinstance(e, SSLError):
            return StorageError(f"TLS failure talking to {self.config.endpoint_url}: {e}")
        if isinstance(e, ConnectionError | HTTPClientError | IncompleteReadError):
            return TransientStorageError(f"cannot {action} {key!r} in {where}: {e}")
        return StorageError(f"cannot {action} {key!r} in {where}: {e}")


def _error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _storage_ns(when: datetime) -> int:
    """S3's LastModified (a timezone-aware datetime, whole seconds) in ns."""
    return int(when.timestamp()) * 10**9
