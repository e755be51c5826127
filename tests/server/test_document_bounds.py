"""The field rules of document_bounds and validation.clean, without a server: each
rule refuses just past its limit and accepts at it, and cleaning keeps what it may."""

from __future__ import annotations

import pytest

from comet.server import document_bounds, validation
from comet.server.errors import InvalidRequestError
from comet.v1 import common_pb2, control_pb2

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("build", "limit"),
    [
        (lambda n: common_pb2.ProtectedItem(name="n" * n), validation.NAME_MAX),
        (lambda n: common_pb2.ProtectedItem(includes=["/" * n]), document_bounds.PATH_MAX),
        (
            lambda n: common_pb2.ProtectedItem(program_command="c" * n),
            document_bounds.LONG_TEXT_MAX,
        ),
        (lambda n: common_pb2.ProtectedItem(exclude_globs=["*"] * n), document_bounds.ENTRIES_MAX),
    ],
)
def test_each_limit_holds_exactly(build: object, limit: int) -> None:
    document_bounds.check(build(limit), what="the item")  # type: ignore[operator]
    with pytest.raises(InvalidRequestError, match=str(limit)):
        document_bounds.check(build(limit + 1), what="the item")  # type: ignore[operator]


def test_map_keys_and_nested_messages_are_walked() -> None:
    item = common_pb2.ProtectedItem()
    item.retention_overrides["v\x00"].CopyFrom(common_pb2.RetentionPolicy())
    with pytest.raises(InvalidRequestError, match="retention_overrides key"):
        document_bounds.check(item, what="the item")
    vault = common_pb2.StorageVault(name="v")
    vault.sftp.private_key = "-----BEGIN KEY-----\n" + "k" * 3000 + "\n-----END KEY-----\n"
    document_bounds.check(vault, what="the vault")  # line breaks are fine in a key
    vault.sftp.host = "h\n"
    with pytest.raises(InvalidRequestError, match=r"the vault\.sftp\.host must not contain"):
        document_bounds.check(vault, what="the vault")


def test_a_job_report_is_cleaned_not_refused() -> None:
    report = control_pb2.JobReport(
        job=common_pb2.Job(job_id="j", error_message="a\x00b\nc"),
        log=[common_pb2.LogEntry(message="x\r\x07y\tz\n" + "w" * 10_000)],
    )
    cleaned = document_bounds.job_report(report)
    assert cleaned.job.error_message == "a\ufffdb\nc"
    message = cleaned.log[0].message
    assert (
        message.startswith("x\ufffd\ufffdy\tz\n") and len(message) == document_bounds.LOG_LINE_MAX
    )


def test_clean_keeps_line_breaks_only_when_asked() -> None:
    assert validation.clean("a\nb\x00", 10) == "a\ufffdb\ufffd"
    assert validation.clean("a\nb\x00", 10, lines=True) == "a\nb\ufffd"
    assert validation.clean("abcdef", 4) == "abc…"
