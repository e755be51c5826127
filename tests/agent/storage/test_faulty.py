"""FaultyStorage: each kind of planned fault hits exactly the calls it names."""

from __future__ import annotations

import pytest

from comet.agent.storage.base import (
    ObjectNotFoundError,
    StorageError,
    TransientStorageError,
)
from comet.agent.storage.faulty import (
    Fault,
    FaultPlan,
    FaultRule,
    FaultyStorage,
    InjectedFault,
    Operation,
)
from comet.agent.storage.memory import MemoryStorage

OTHER_OPS: list[Operation] = ["delete", "list", "stat"]


def make(*rules: FaultRule) -> tuple[FaultyStorage, MemoryStorage]:
    inner = MemoryStorage()
    return FaultyStorage(inner, FaultPlan(rules)), inner


def test_calls_are_counted_per_rule_among_matching_calls() -> None:
    storage, inner = make(FaultRule("put", Fault.TRANSIENT, prefix="data/", calls={2, 3}))
    storage.put("data/1", b"1")
    storage.put("index/1", b"i")  # another prefix: neither hit nor counted
    with pytest.raises(TransientStorageError):
        storage.put("data/2", b"2")
    with pytest.raises(TransientStorageError):
        storage.put("data/3", b"3")
    storage.put("data/4", b"4")
    assert sorted(info.key for info in inner.list()) == ["data/1", "data/4", "index/1"]
    assert storage.injected == [
        InjectedFault("put", "data/2", Fault.TRANSIENT),
        InjectedFault("put", "data/3", Fault.TRANSIENT),
    ]


def test_error_is_not_transient_and_skips_the_inner_call() -> None:
    storage, inner = make(FaultRule("put", Fault.ERROR))
    with pytest.raises(StorageError) as info:
        storage.put("k", b"v")
    assert not isinstance(info.value, TransientStorageError)
    with pytest.raises(ObjectNotFoundError):
        inner.stat("k")


def test_truncate_put_stores_part() -> None:
    storage, inner = make(FaultRule("put", Fault.TRUNCATE))
    storage.put("k", b"0123456789")
    assert inner.get("k") == b"01234"


def test_truncate_get_returns_fewer_bytes() -> None:
    storage, inner = make(FaultRule("get", Fault.TRUNCATE, calls={1}))
    inner.put("k", b"0123456789")
    assert storage.get("k") == b"01234"
    assert storage.get("k") == b"0123456789"
    assert inner.get("k") == b"0123456789"


@pytest.mark.parametrize("op", ["put", "get"])
def test_corrupt_flips_one_byte(op: Operation) -> None:
    storage, inner = make(FaultRule(op, Fault.CORRUPT))
    original = bytes(range(100))
    if op == "put":
        storage.put("k", original)
        seen = inner.get("k")
    else:
        inner.put("k", original)
        seen = storage.get("k")
    assert len(seen) == len(original)
    assert [i for i in range(100) if seen[i] != original[i]] == [50]


def test_corrupt_leaves_empty_data_alone() -> None:
    storage, inner = make(FaultRule("put", Fault.CORRUPT))
    storage.put("k", b"")
    assert inner.get("k") == b""


@pytest.mark.parametrize("op", OTHER_OPS)
def test_faults_in_other_operations(op: Operation) -> None:
    storage, inner = make(FaultRule(op, Fault.TRANSIENT, prefix="a"))
    inner.put("a/k", b"v")
    with pytest.raises(TransientStorageError):
        if op == "delete":
            storage.delete("a/k")
        elif op == "list":
            storage.list("a/")
        else:
            storage.stat("a/k")
    assert inner.get("a/k") == b"v"


def test_first_matching_rule_decides() -> None:
    storage, inner = make(
        FaultRule("get", Fault.ERROR, calls={2}),
        FaultRule("get", Fault.TRUNCATE),
    )
    inner.put("k", b"abcd")
    assert storage.get("k") == b"ab"
    with pytest.raises(StorageError):
        storage.get("k")
    assert storage.get("k") == b"ab"


@pytest.mark.parametrize("op", OTHER_OPS)
def test_data_faults_only_for_put_and_get(op: Operation) -> None:
    with pytest.raises(ValueError):
        FaultRule(op, Fault.TRUNCATE)
