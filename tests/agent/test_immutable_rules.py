"""Which new vaults the agent accepts as immutable, and what a policy forces."""

from __future__ import annotations

import pytest

from comet.agent.immutable import check_new_vault
from comet.agent.storage.object_lock import ImmutabilityUnsupportedError
from comet.v1 import common_pb2

pytestmark = pytest.mark.timeout(10)


def _vault(kind: str, days: int = 0) -> common_pb2.StorageVault:
    vault = common_pb2.StorageVault(name="v", immutable_days=days)
    getattr(vault, kind).SetInParent()
    return vault


@pytest.mark.parametrize("kind", ["local", "sftp"])
def test_local_and_sftp_cannot_be_immutable(kind: str) -> None:
    with pytest.raises(ImmutabilityUnsupportedError, match="cannot be immutable"):
        check_new_vault(_vault(kind, days=7), forced_days=0)
    with pytest.raises(ImmutabilityUnsupportedError, match="cannot be immutable"):
        check_new_vault(_vault(kind), forced_days=7)  # and a policy that forces it


@pytest.mark.parametrize("kind", ["comet", "s3"])
def test_a_policy_forces_at_least_its_days(kind: str) -> None:
    check_new_vault(_vault(kind, days=30), forced_days=7)
    check_new_vault(_vault(kind), forced_days=0)
    with pytest.raises(ImmutabilityUnsupportedError, match="--immutable-days 7"):
        check_new_vault(_vault(kind, days=3), forced_days=7)
