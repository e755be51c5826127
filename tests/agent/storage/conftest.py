"""The ``backend`` fixture: every Storage implementation, ready to use and empty."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from comet.agent.storage.base import TEMP_MARKER, Storage
from comet.agent.storage.faulty import FaultPlan, FaultyStorage
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.memory import MemoryStorage
from comet.agent.storage.retry import RetryingStorage
from comet.agent.storage.s3 import S3Config, S3Storage
from comet.agent.storage.sftp import SftpConfig, SftpStorage
from tests.fixtures.sftp import SftpTestServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BACKENDS = ["memory", "local", "s3", "sftp", "retry-local", "faulty-memory"]


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


def _no_sleep(seconds: float) -> None:
    pass


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name: str = request.param
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
    else:
        raise AssertionError(name)
    try:
        yield made
    finally:
        made.storage.close()


@pytest.fixture
def storage(backend: Backend) -> Storage:
    return backend.storage
