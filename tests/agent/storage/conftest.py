"""The ``backend`` fixture: every Storage implementation, ready to use and empty."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from comet.agent.storage.base import TEMP_MARKER, Storage
from comet.agent.storage.comet import CometStorage, CometStorageConfig
from comet.agent.storage.faulty import FaultPlan, FaultyStorage
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.memory import MemoryStorage
from comet.agent.storage.retry import RetryingStorage
from comet.agent.storage.s3 import S3Config, S3Storage
from comet.agent.storage.sftp import SftpConfig, SftpStorage
from comet.server.buckets.files import TEMP_DIR
from tests.fixtures.comet_server import CometTestServer
from tests.fixtures.sftp import SftpTestServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BACKENDS = ["memory", "local", "s3", "sftp", "comet", "retry-local", "faulty-memory"]


@dataclass
class Backend:
    """A storage under test, and a way to leave an in-flight upload of ``key`` behind
    (as a crash mid-put would) where the backend has such a thing."""

    storage: Storage
    plant_partial: Callable[[str, bytes], None] | None


def _plant_file(root: Path) -> Callable[[str, bytes], None]:
    def plant(key: str, data: bytes) -> None:
        path = root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + TEMP_MARKER + "crashed").write_bytes(data)

    return plant


def _plant_multipart(client: S3Client, config: S3Config) -> Callable[[str, bytes], None]:
    def plant(key: str, data: bytes) -> None:
        name = config.prefix + key
        upload = client.create_multipart_upload(Bucket=config.bucket, Key=name)
        client.upload_part(
            Bucket=config.bucket, Key=name, UploadId=upload["UploadId"], PartNumber=1, Body=data
        )

    return plant


def _plant_server_upload(server: CometTestServer, bucket_id: str) -> Callable[[str, bytes], None]:
    """The server keeps in-flight uploads in the bucket's temp dir, under random names."""

    def plant(key: str, data: bytes) -> None:
        temp = server.bucket_dir(bucket_id) / TEMP_DIR
        (temp / f"{key.replace('/', '_')}-crashed~").write_bytes(data)

    return plant


def _no_sleep(seconds: float) -> None:
    pass


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _make_backend(request, tmp_path, request.param)


# Backends that keep uploads somewhere before they are visible (the in-memory ones
# have no such state, so the in-flight test does not apply to them).
STAGING_BACKENDS = ["local", "s3", "sftp", "comet", "retry-local"]


@pytest.fixture(params=STAGING_BACKENDS)
def staging_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _make_backend(request, tmp_path, request.param)


def _make_backend(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[Backend]:
    if name == "memory":
        made = Backend(MemoryStorage(), None)
    elif name == "local":
        made = Backend(LocalStorage(tmp_path / "vault"), _plant_file(tmp_path / "vault"))
    elif name == "retry-local":
        inner = LocalStorage(tmp_path / "vault")
        made = Backend(RetryingStorage(inner, sleep=_no_sleep), _plant_file(tmp_path / "vault"))
    elif name == "faulty-memory":
        made = Backend(FaultyStorage(MemoryStorage(), FaultPlan()), None)
    elif name == "s3":
        config: S3Config = request.getfixturevalue("s3_bucket")
        client: S3Client = request.getfixturevalue("moto_client")
        made = Backend(S3Storage(config), _plant_multipart(client, config))
    elif name == "sftp":
        sftp_config: SftpConfig = request.getfixturevalue("sftp_config")
        server: SftpTestServer = request.getfixturevalue("sftp_server")
        home = server.workdir / sftp_config.username
        made = Backend(SftpStorage(sftp_config), _plant_file(home / "vault"))
    elif name == "comet":
        comet_config: CometStorageConfig = request.getfixturevalue("comet_bucket")
        comet_server: CometTestServer = request.getfixturevalue("comet_server")
        made = Backend(
            CometStorage(comet_config), _plant_server_upload(comet_server, comet_config.bucket_id)
        )
    else:
        raise AssertionError(name)
    try:
        yield made
    finally:
        made.storage.close()


@pytest.fixture
def storage(backend: Backend) -> Storage:
    return backend.storage
