from __future__ import annotations

import pytest

from comet.agent.credentials import (
    KdfParams,
    KdfPolicyError,
    WrongPasswordError,
    derive_login_secrets,
    require_kdf_floor,
    require_no_downgrade,
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


def test_parameters_below_the_floor_are_refused_with_a_clear_message() -> None:
    weak = KdfParams(algorithm=1, salt=b"s" * 16, log2_n=10)
    with pytest.raises(KdfPolicyError, match=r"N=2\^10.*at least scrypt N=2\^15"):
        require_kdf_floor(weak)
    with pytest.raises(KdfPolicyError):
        require_kdf_floor(KdfParams(algorithm=1, salt=b"s" * 16, r=4))
    require_kdf_floor(KdfParams.new())


def test_a_downgrade_from_the_recorded_parameters_is_refused_even_above_the_floor() -> None:
    recorded = KdfParams(algorithm=1, salt=b"a" * 16, log2_n=17, r=8, p=2)
    with pytest.raises(KdfPolicyError, match=r"weaker.*N=2\^16.*N=2\^17"):
        require_no_downgrade(recorded, KdfParams(algorithm=1, salt=b"b" * 16, log2_n=16, p=2))
    with pytest.raises(KdfPolicyError):
        require_no_downgrade(recorded, KdfParams(algorithm=1, salt=b"b" * 16, log2_n=17, p=1))
    # A new salt at the same or a higher cost (a password change) is fine.
    require_no_downgrade(recorded, KdfParams(algorithm=1, salt=b"b" * 16, log2_n=18, p=2))
    renewed = recorded.renewed()
    assert renewed.salt != recorded.salt
    assert (renewed.log2_n, renewed.r, renewed.p) == (17, 8, 2)
