from __future__ import annotations

import pytest

from comet.agent.credentials import (
    KdfParams,
    WrongPasswordError,
    derive_login_secrets,
    unwrap_secret,
    wrap_secret,
)
from comet.agent.errors import AgentError

FAST = 10  # log2(N) small enough for tests; real logins use 15


def test_derivation_is_deterministic_and_splits_two_independent_keys() -> None:
    params = KdfParams.new(log2_n=FAST)
    a = derive_login_secrets("correct horse", params)
    b = derive_login_secrets("correct horse", params)
    assert a == b
    assert len(a.auth_key) == len(a.wrap_key) == 32
    assert a.auth_key != a.wrap_key


def test_other_password_or_salt_gives_other_keys() -> None:
    params = KdfParams.new(log2_n=FAST)
    base = derive_login_secrets("correct horse", params)
    assert derive_login_secrets("correct horsE", params).auth_key != base.auth_key
    assert derive_login_secrets("correct horse", KdfParams.new(log2_n=FAST)) != base


def test_wrapped_secret_opens_only_with_the_same_wrapping_key() -> None:
    params = KdfParams.new(log2_n=FAST)
    right = derive_login_secrets("password-1", params).wrap_key
    wrong = derive_login_secrets("password-2", params).wrap_key
    wrapped = wrap_secret(right, b"\x01" * 32)
    assert unwrap_secret(right, wrapped) == b"\x01" * 32
    with pytest.raises(WrongPasswordError, match="different password"):
        unwrap_secret(wrong, wrapped)
    with pytest.raises(WrongPasswordError):
        unwrap_secret(right, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))


@pytest.mark.parametrize(
    "params",
    [
        KdfParams(algorithm=99, salt=b"s" * 16),
        KdfParams(algorithm=1, salt=b"s" * 16, log2_n=40),
        KdfParams(algorithm=1, salt=b"s" * 16, r=0),
    ],
)
def test_hostile_kdf_parameters_from_a_server_are_refused(params: KdfParams) -> None:
    with pytest.raises(AgentError):
        derive_login_secrets("password", params)
