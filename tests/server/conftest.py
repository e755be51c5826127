from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from comet.server.store.accounts import AccountStore, LoginPolicy
from comet.server.store.database import create_engine


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def accounts(database_url: str, clock: FakeClock) -> AsyncIterator[AccountStore]:
    engine = create_engine(database_url, pool_size=2)
    try:
        yield AccountStore(
            engine,
            clock,
            LoginPolicy(session_hours=1, max_failed_logins=3, failed_login_window_seconds=600),
        )
    finally:
        await engine.dispose()
