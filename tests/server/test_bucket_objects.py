"""One conformance suite for both places bucket objects live (``BucketObjects``): a
directory on the server's disk and an S3-compatible object store (a real
moto_server). The store above them relies on exactly these behaviours."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comet.server.buckets.errors import ImmutableObjectError, ObjectNotFoundError, RangeError
from comet.server.buckets.files import BucketFiles
from comet.server.buckets.objects import BucketObjects
from comet.server.buckets.s3 import BucketS3, S3BucketConfig, parse_store_url
from comet.server.config import s3_credentials
from tests.fixtures.comet_server import BUCKET_STORES
from tests.fixtures.moto import ACCESS_KEY, SECRET_KEY

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(params=BUCKET_STORES)
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BucketObjects]:
    if request.param == "files":
        yield BucketFiles(tmp_path)
        return
    endpoint: str = request.getfixturevalue("moto_endpoint")
    store = BucketS3(
        S3BucketConfig(endpoint, f"objects-{uuid.uuid4().hex[:12]}", "p/", ACCESS_KEY, SECRET_KEY)
    )
    store._client.create_bucket(Bucket=store.config.bucket)
    yield store


@pytest.fixture
def bucket(objects: BucketObjects) -> str:
    bucket_id = str(uuid.uuid4())
    objects.create(bucket_id)
    return bucket_id


def put(objects: BucketObjects, bucket: str, key: str, data: bytes, *, new: bool = False) -> bool:
    pending = objects.begin_put(bucket, key)
    try:
        pending.write(data)
        pending.finish()
        if new:
            return objects.publish_new(pending, T0)
        objects.publish(pending, T0)
        return True
    finally:
        pending.discard()


def read(objects: BucketObjects, bucket: str, key: str, offset: int, length: int | None) -> bytes:
    reader = objects.open_range(bucket, key, offset, length)
    try:
        data = reader.read(reader.size) if reader.size else b""
        assert len(data) == reader.size
        return data
    finally:
        reader.close()


def test_put_get_ranges_stat_and_delete(objects: BucketObjects, bucket: str) -> None:
    data = bytes(range(256)) * 10
    put(objects, bucket, "data/ab/pack", data)
    put(objects, bucket, "empty", b"")
    assert read(objects, bucket, "data/ab/pack", 0, None) == data
    assert read(objects, bucket, "data/ab/pack", 100, 50) == data[100:150]
    assert read(objects, bucket, "data/ab/pack", 2500, None) == data[2500:]
    assert read(objects, bucket, "data/ab/pack", len(data), None) == b""
    assert read(objects, bucket, "data/ab/pack", 7, 0) == b""
    assert read(objects, bucket, "empty", 0, None) == b""
    for offset, length in ((2550, 100), (len(data) + 1, None), (len(data) + 1, 0)):
        with pytest.raises(RangeError):
            objects.open_range(bucket, "data/ab/pack", offset, length)
    with pytest.raises(ObjectNotFoundError):
        objects.open_range(bucket, "nothing", 0, None)
    with pytest.raises(ObjectNotFoundError):
        objects.stat(bucket, "nothing")
    entry = objects.stat(bucket, "data/ab/pack")
    assert (entry.key, entry.size) == ("data/ab/pack", len(data)) and entry.mtime_ns
    assert objects.size_of(bucket, "data/ab/pack") == len(data)
    assert objects.size_of(bucket, "nothing") == 0
    put(objects, bucket, "data/ab/pack", b"shorter")  # an overwrite replaces
    assert read(objects, bucket, "data/ab/pack", 0, None) == b"shorter"
    assert objects.delete(bucket, "data/ab/pack") == 7
    assert objects.delete(bucket, "data/ab/pack") == 0


def test_listings_carry_sizes_and_storage_mtimes(objects: BucketObjects, bucket: str) -> None:
    before = time.time_ns() - 2_000_000_000
    for key in ("data/aa/1", "data/ab/2", "index/1", "snapshots/1"):
        put(objects, bucket, key, key.encode())
    after = time.time_ns() + 2_000_000_000
    listed = {e.key: e for e in objects.list(bucket, "")}
    assert sorted(listed) == ["data/aa/1", "data/ab/2", "index/1", "snapshots/1"]
    assert all(e.size == len(e.key) for e in listed.values())
    assert all(e.mtime_ns is not None and before < e.mtime_ns < after for e in listed.values())
    assert sorted(e.key for e in objects.list(bucket, "data/")) == ["data/aa/1", "data/ab/2"]
    assert sorted(e.key for e in objects.list(bucket, "data/a")) == ["data/aa/1", "data/ab/2"]
    assert [e.key for e in objects.list(bucket, "data/aa/")] == ["data/aa/1"]
    assert list(objects.list(bucket, "nothing/")) == []
    assert objects.usage(bucket) == sum(len(k) for k in listed)


def test_a_discarded_upload_leaves_nothing(objects: BucketObjects, bucket: str) -> None:
    pending = objects.begin_put(bucket, "data/x")
    pending.write(b"half")
    pending.discard()
    pending.discard()
    assert list(objects.list(bucket, "")) == [] and objects.usage(bucket) == 0


def test_immutable_writes_trash_restore_and_purge(objects: BucketObjects, bucket: str) -> None:
    assert put(objects, bucket, "data/ab/pack", b"original", new=True)
    assert not put(objects, bucket, "data/ab/pack", b"original", new=True)  # a retried put
    with pytest.raises(ImmutableObjectError):
        put(objects, bucket, "data/ab/pack", b"tampered", new=True)
    assert read(objects, bucket, "data/ab/pack", 0, None) == b"original"

    written = objects.written_at(bucket, "data/ab/pack")
    assert written is not None
    later = max(written, T0) + timedelta(hours=1)
    assert objects.restamp(bucket, "data/ab/pack", later)
    assert objects.written_at(bucket, "data/ab/pack") == later
    assert objects.restamp(bucket, "data/ab/pack", later - timedelta(days=1))  # never earlier
    assert objects.written_at(bucket, "data/ab/pack") == later
    assert not objects.restamp(bucket, "nothing", later)
    assert objects.written_at(bucket, "nothing") is None

    t1 = later + timedelta(hours=1)
    assert objects.move_to_trash(bucket, "data/ab/pack", t1) == len(b"original")
    assert objects.move_to_trash(bucket, "data/ab/pack", t1) == 0
    assert list(objects.list(bucket, "")) == []  # the trash is not listed
    assert objects.usage(bucket) == 0
    [entry] = objects.trash_entries(bucket)
    assert (entry.key, entry.size, entry.deleted_at) == ("data/ab/pack", 8, t1)
    assert objects.last_change(bucket) == t1
    assert objects.purge_trash(bucket, deleted_before=t1) == 0  # still protected
    assert objects.restore(bucket, "data/ab/pack") == 8
    assert read(objects, bucket, "data/ab/pack", 0, None) == b"original"
    objects.move_to_trash(bucket, "data/ab/pack", t1)
    put(objects, bucket, "data/ab/pack", b"again", new=True)
    assert objects.restore(bucket, "data/ab/pack") == 0  # never over an existing object
    assert objects.purge_trash(bucket, deleted_before=t1 + timedelta(seconds=1)) == 1
    assert objects.trash_entries(bucket) == []
    assert objects.restore(bucket, "data/ab/pack") == 0


def test_removing_a_bucket_takes_everything(objects: BucketObjects, bucket: str) -> None:
    other = str(uuid.uuid4())
    objects.create(other)
    put(objects, bucket, "data/1", b"x")
    put(objects, other, "data/1", b"y")
    objects.move_to_trash(bucket, "data/1", T0)
    put(objects, bucket, "data/2", b"z")
    objects.remove_bucket(bucket)
    objects.remove_bucket(bucket)
    assert list(objects.list(bucket, "")) == [] and objects.trash_entries(bucket) == []
    assert [e.key for e in objects.list(other, "")] == ["data/1"]


def test_store_urls_and_credentials_never_need_argv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert parse_store_url("s3://vaults/comet/prod") == ("vaults", "comet/prod/")
    assert parse_store_url("s3://vaults") == ("vaults", "")
    with pytest.raises(ValueError):
        parse_store_url("https://vaults/x")
    monkeypatch.delenv("COMET_S3_CREDENTIALS_FILE", raising=False)
    monkeypatch.setenv("COMET_S3_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("COMET_S3_SECRET_ACCESS_KEY", "SK")
    found = s3_credentials(None)
    assert found is not None and (found.access_key, found.secret_key) == ("AK", "SK")
    assert "SK" not in repr(found)
    with tempfile.NamedTemporaryFile("w", suffix=".ini") as f:
        f.write("[default]\naws_access_key_id = FK\naws_secret_access_key = FS\n")
        f.flush()
        found = s3_credentials(Path(f.name))
    assert found is not None and (found.access_key, found.secret_key) == ("FK", "FS")
