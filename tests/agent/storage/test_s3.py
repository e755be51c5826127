"""S3Storage beyond the shared contract: error mapping, bucket creation, paging."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from comet.agent.storage.base import StorageError, TransientStorageError
from comet.agent.storage.s3 import S3Config, S3Storage
from tests.fixtures.moto import ACCESS_KEY, SECRET_KEY, running_moto_server

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def test_stopped_server_is_transient() -> None:
    with running_moto_server() as url:
        config = S3Config(
            url, "short-lived", "", ACCESS_KEY, SECRET_KEY, create_bucket=True, connect_timeout=1
        )
        storage = S3Storage(config)
        storage.put("k", b"v")
    # The server is gone now.
    for call in (
        lambda: storage.get("k"),
        lambda: storage.put("k", b"v"),
        lambda: storage.stat("k"),
        lambda: list(storage.list()),
    ):
        with pytest.raises(TransientStorageError):
            call()
    storage.close()


def test_missing_bucket_is_not_transient(s3_bucket: S3Config) -> None:
    storage = S3Storage(replace(s3_bucket, bucket=f"absent-{uuid.uuid4().hex[:8]}"))
    with pytest.raises(StorageError, match=r"bucket .* does not exist") as info:
        storage.put("k", b"v")
    assert not isinstance(info.value, TransientStorageError)


def test_create_bucket_is_idempotent(moto_endpoint: str) -> None:
    config = S3Config(
        moto_endpoint,
        f"made-{uuid.uuid4().hex[:8]}",
        "",
        ACCESS_KEY,
        SECRET_KEY,
        create_bucket=True,
    )
    S3Storage(config).put("k", b"v")
    assert S3Storage(config).get("k") == b"v"


def test_listing_pages(s3_bucket: S3Config) -> None:
    storage = S3Storage(replace(s3_bucket, list_page_size=2))
    keys = {f"data/{i:02d}" for i in range(7)}
    for key in keys:
        storage.put(key, b"x")
    assert {info.key for info in storage.list("data/")} == keys


def test_keys_live_under_the_prefix(s3_bucket: S3Config, moto_client: S3Client) -> None:
    storage = S3Storage(replace(s3_bucket, prefix="v1"))  # a missing "/" is added
    storage.put("data/a", b"x")
    names = [o["Key"] for o in moto_client.list_objects_v2(Bucket=s3_bucket.bucket)["Contents"]]
    assert names == ["v1/data/a"]
    assert [info.key for info in storage.list()] == ["data/a"]
