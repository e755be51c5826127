"""Fixtures for backup tests: a fresh in-memory repository and a counting reporter."""

from __future__ import annotations

import pytest

from comet.agent.reporter import JobWarning
from comet.agent.repository import Repository
from comet.agent.storage.memory import MemoryStorage

VAULT_KEY = b"k" * 32


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def repo(storage: MemoryStorage) -> Repository:
    return Repository.init(storage, VAULT_KEY)


class CountingReporter:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.unchanged: list[str] = []
        self.read = 0
        self.uploaded = 0
        self.warnings: list[JobWarning] = []
        self.estimate: tuple[int, int] | None = None

    def expected(self, files: int, size: int) -> None:
        self.estimate = (files, size)

    def file_started(self, path: str, size: int) -> None:
        self.started.append(path)

    def file_unchanged(self, path: str, size: int) -> None:
        self.unchanged.append(path)

    def bytes_read(self, count: int) -> None:
        self.read += count

    def bytes_uploaded(self, count: int) -> None:
        self.uploaded += count

    def warning(self, warning: JobWarning) -> None:
        self.warnings.append(warning)
