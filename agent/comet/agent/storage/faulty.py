"""``FaultyStorage``: a Storage wrapper that injects planned faults, for testing how
the engine copes with failing, truncating and corrupting storage."""

from __future__ import annotations

import enum
import threading
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import Literal

from comet.agent.storage.base import (
    ObjectInfo,
    Storage,
    StorageError,
    TransientStorageError,
)

Operation = Literal["put", "get", "delete", "list", "stat"]


class Fault(enum.Enum):
    """What happens to a call a rule hits."""

    TRANSIENT = "transient"  # raise TransientStorageError; the inner storage is not called
    ERROR = "error"  # raise StorageError; the inner storage is not called
    TRUNCATE = "truncate"  # put stores only the first half; get returns only the first half
    CORRUPT = "corrupt"  # put stores, or get returns, the data with its middle byte flipped


@dataclass(frozen=True)
class FaultRule:
    """Inject ``fault`` into calls of ``op`` whose key (or list prefix) starts with
    ``prefix``. ``calls`` holds the 1-based numbers, counted among the calls this rule
    matches, of the calls to hit (``range(1, 3)`` for the first two); None hits all."""

    op: Operation
    fault: Fault
    prefix: str = ""
    calls: Container[int] | None = None

    def __post_init__(self) -> None:
        if self.fault in (Fault.TRUNCATE, Fault.CORRUPT) and self.op not in ("put", "get"):
            raise ValueError(f"{self.fault.value} applies to put and get, not {self.op}")


@dataclass(frozen=True)
class FaultPlan:
    """The rules of a FaultyStorage; the first rule hitting a call decides its fault."""

    rules: tuple[FaultRule, ...] = ()


@dataclass(frozen=True)
class InjectedFault:
    """A record of one fault FaultyStorage injected."""

    op: Operation
    key: str
    fault: Fault


@dataclass
class _Counters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: dict[int, int] = field(default_factory=dict)


def _flip_middle_byte(data: bytes) -> bytes:
    if not data:
        return data
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


class FaultyStorage:
    """Passes calls to ``inner`` except those ``plan`` says to spoil. Every injected
    fault is appended to ``injected``."""

    def __init__(self, inner: Storage, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan
        self.injected: list[InjectedFault] = []
        self._counters = _Counters()

    def put(self, key: str, data: bytes) -> None:
        fault = self._fault("put", key)
        if fault is Fault.TRUNCATE:
            data = data[: len(data) // 2]
        elif fault is Fault.CORRUPT:
            data = _flip_middle_byte(data)
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        fault = self._fault("get", key)
        data = self.inner.get(key, offset, length)
        if fault is Fault.TRUNCATE:
            return data[: len(data) // 2]
        if fault is Fault.CORRUPT:
            return _flip_middle_byte(data)
        return data

    def stat(self, key: str) -> ObjectInfo:
        self._fault("stat", key)
        return self.inner.stat(key)

    def delete(self, key: str) -> None:
        self._fault("delete", key)
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._fault("list", prefix)
        return self.inner.list(prefix)

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        self._fault("delete", "")
        return self.inner.remove_temporary(before_ns)

    def close(self) -> None:
        self.inner.close()

    def _fault(self, op: Operation, key: str) -> Fault | None:
        """Count the call against every rule it matches; raise the first hit's error
        fault, or return its data fault (None when no rule hits)."""
        hit: Fault | None = None
        hit_number = 0
        with self._counters.lock:
            for index, rule in enumerate(self.plan.rules):
                if rule.op != op or not key.startswith(rule.prefix):
                    continue
                number = self._counters.seen.get(index, 0) + 1
                self._counters.seen[index] = number
                if hit is None and (rule.calls is None or number in rule.calls):
                    hit, hit_number = rule.fault, number
            if hit is not None:
                self.injected.append(InjectedFault(op, key, hit))
        if hit is Fault.TRANSIENT:
            raise TransientStorageError(f"injected transient fault #{hit_number} in {op} {key!r}")
        if hit is Fault.ERROR:
            raise StorageError(f"injected fault #{hit_number} in {op} {key!r}")
        return hit
