"""`comet ls -R --json` writes its rows and times without json's indenting encoder and
protobuf's datetime conversion (one of each per file; orjson a batch at a time, a cache
of each second's text): the text must be exactly what those give."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import UTC
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from comet.agent.client_cli.browse import _stream_json
from comet.agent.output import rfc3339, rfc3339_parts

_MIN, _MAX = -62_135_596_800, 253_402_300_799

# A listing's rows are flat: strings (lone surrogates, which orjson refuses, included),
# None, booleans and integers (past 64 bits, which orjson refuses, included).
_values = st.text() | st.none() | st.booleans() | st.integers() | st.integers(-(2**64), 2**64)
_rows = st.lists(st.dictionaries(st.text(max_size=6), _values, max_size=5), max_size=4)


@settings(max_examples=150, deadline=None)
@given(st.lists(_rows, max_size=4))
def test_streamed_rows_are_what_print_json_writes(batches: list[list[dict[str, Any]]]) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        _stream_json(batches)
    whole = [row for rows in batches for row in rows]
    assert out.getvalue() == json.dumps(whole, indent=2, ensure_ascii=False) + "\n"


def _slow_rfc3339(ts: Timestamp) -> str | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=_MIN, max_value=_MAX) | st.sampled_from([0, _MIN, _MAX, -1]),
    st.integers(min_value=0, max_value=999_999_999) | st.sampled_from([0, 999, 1000]),
)
def test_rfc3339_is_protobufs_datetime(seconds: int, nanos: int) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    assert rfc3339(ts) == _slow_rfc3339(ts)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=_MIN - 2, max_value=_MAX + 2)
            | st.sampled_from([0, _MIN, _MAX, -1, 1]),
            st.integers(min_value=0, max_value=999_999_999) | st.sampled_from([0, 999, 1000]),
        ),
        max_size=8,
    )
)
def test_rfc3339_parts_is_rfc3339(times: list[tuple[int, int]]) -> None:
    for seconds, nanos in [*times, *times]:  # again: from the cache of seconds
        ts = Timestamp(seconds=seconds, nanos=nanos)
        try:
            expected = rfc3339(ts)
        except ValueError:
            with pytest.raises(ValueError):
                rfc3339_parts(seconds, nanos)
        else:
            assert rfc3339_parts(seconds, nanos) == expected
