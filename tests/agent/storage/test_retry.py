"""RetryingStorage: which errors it retries, how often, and how long it waits."""

from __future__ import annotations

import random

import pytest

from comet.agent.storage.base import ObjectNotFoundError, StorageError, TransientStorageError
from comet.agent.storage.faulty import Fault, FaultPlan, FaultRule, FaultyStorage
from comet.agent.storage.memory import MemoryStorage
from comet.agent.storage.retry import RetryingStorage


def faulty(*rules: FaultRule) -> FaultyStorage:
    return FaultyStorage(MemoryStorage(), FaultPlan(rules))


def test_recovers_from_transient_failures() -> None:
    inner = faulty(FaultRule("put", Fault.TRANSIENT, calls=range(1, 4)))
    sleeps: list[float] = []
    storage = RetryingStorage(inner, attempts=5, sleep=sleeps.append)
    storage.put("data/a", b"payload")
    assert len(sleeps) == 3
    assert len(inner.injected) == 3
    assert storage.get("data/a") == b"payload"
    assert len(sleeps) == 3  # the get did not need a retry


def test_gives_up_after_attempts_with_the_last_error() -> None:
    inner = faulty(FaultRule("get", Fault.TRANSIENT))
    inner.inner.put("k", b"v")
    sleeps: list[float] = []
    storage = RetryingStorage(inner, attempts=4, sleep=sleeps.append)
    with pytest.raises(TransientStorageError, match="#4 in get"):
        storage.get("k")
    assert len(inner.injected) == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize("attempts", [1, 2])
def test_few_attempts(attempts: int) -> None:
    inner = faulty(FaultRule("stat", Fault.TRANSIENT, calls={1}))
    inner.inner.put("k", b"v")
    sleeps: list[float] = []
    storage = RetryingStorage(inner, attempts=attempts, sleep=sleeps.append)
    if attempts == 1:
        with pytest.raises(TransientStorageError):
            storage.stat("k")
    else:
        assert storage.stat("k").size == 1
    assert len(sleeps) == attempts - 1


def test_never_retries_other_errors() -> None:
    inner = faulty(FaultRule("delete", Fault.ERROR))
    sleeps: list[float] = []
    storage = RetryingStorage(inner, sleep=sleeps.append)
    with pytest.raises(StorageError) as info:
        storage.delete("k")
    assert not isinstance(info.value, TransientStorageError)
    with pytest.raises(ObjectNotFoundError):
        storage.get("missing")
    assert len(inner.injected) == 1
    assert sleeps == []


def test_delays_grow_with_jitter() -> None:
    inner = faulty(FaultRule("put", Fault.TRANSIENT))
    sleeps: list[float] = []
    storage = RetryingStorage(
        inner,
        attempts=7,
        base_delay=0.2,
        max_delay=1.0,
        sleep=sleeps.append,
        rng=random.Random(7),
    )
    with pytest.raises(TransientStorageError):
        storage.put("k", b"v")
    caps = [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert len(sleeps) == len(caps)
    for slept, cap in zip(sleeps, caps, strict=True):
        assert cap / 2 <= slept <= cap
    # While the cap doubles, each delay is at least the previous one's cap.
    assert sleeps[0] <= 0.2 <= sleeps[1] <= 0.4 <= sleeps[2]
    assert len(set(sleeps)) == len(sleeps), "delays are jittered"


def test_list_is_retried_as_a_whole() -> None:
    inner = faulty(FaultRule("list", Fault.TRANSIENT, calls={1}))
    for key in ("a/1", "a/2", "b/1"):
        inner.put(key, b"x")
    sleeps: list[float] = []
    storage = RetryingStorage(inner, sleep=sleeps.append)
    assert sorted(info.key for info in storage.list("a/")) == ["a/1", "a/2"]
    assert len(sleeps) == 1


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RetryingStorage(MemoryStorage(), attempts=0)
