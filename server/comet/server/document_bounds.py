"""Limits on the structured documents callers send (profiles, policies, dispatched
commands, job reports), checked on the decoded message before any database work.

Every string field of such a message is held to a length and a character policy
chosen by its name: labels and ids are one line of at most ``validation.NAME_MAX``
characters with no control characters; paths, patterns and addresses are at most
``PATH_MAX`` characters; commands, keys and other long values at most
``LONG_TEXT_MAX``. No string may hold a NUL (PostgreSQL cannot store one, and no
path or command contains one). Repeated fields hold at most ``ENTRIES_MAX``
entries and the whole message at most ``DOCUMENT_MAX`` bytes. A refusal names the
field (its path in the message) and the limit, never the value.

Job reports are the exception that keeps a device's history flowing: a device
cannot edit what it already logged and would drop a refused report for good, so
over-long or odd free text in them (log lines, error messages, the current path)
is cut and cleaned rather than refused; only malformed ids and an oversized
batch are refused."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from comet.server import validation
from comet.server.errors import InvalidRequestError
from comet.v1 import control_pb2

DOCUMENT_MAX = 1024 * 1024
ENTRIES_MAX = 10_000
PATH_MAX = 4096
LONG_TEXT_MAX = 64 * 1024
LOG_LINES_MAX = 1000  # the agent sends at most 500 per report
LOG_LINE_MAX = 8192
ERROR_MESSAGE_MAX = 16 * 1024

# One-line labels, besides every "name" and "*_id" field.
_LABELS = frozenset(
    {
        "account_name",
        "access_key",
        "address",  # email addresses
        "bucket",
        "emails",
        "events",
        "host",
        "job_rule",
        "key",  # map keys (ids)
        "language",
        "os",
        "region",
        "security",
        "sender",
        "snapshot_ids",
        "summary",
        "timezone",
        "username",
    }
)
# Values that may be long: program text, key material, signed grants.
_LONG = frozenset(
    {
        "bucket_key",
        "command",
        "delete_grant",
        "host_key",
        "password",
        "private_key",
        "program_command",
        "secret_key",
    }
)

# Values bounded only by the document: certificate bundles.
_BUNDLES = frozenset({"ca_pem"})


def check(message: Message, *, what: str) -> None:
    """Refuses ``message`` (called ``what`` in the refusal) unless every field is
    within its bounds."""
    if message.ByteSize() > DOCUMENT_MAX:
        raise InvalidRequestError(f"{what} is larger than {DOCUMENT_MAX // 1024 // 1024} MiB")
    _walk(message, what)


def _walk(message: Message, path: str) -> None:
    for field, value in message.ListFields():
        where = f"{path}.{field.name}"
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = field.message_type
            if entry is not None and _is_map(entry):
                _entries(where, len(value))
                value_field = entry.fields_by_name["value"]
                for key, item in value.items():
                    if isinstance(key, str):
                        _string(f"{where} key", "key", key)
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                        _walk(item, f"{where}[{key!r}]")
                    elif isinstance(item, str):
                        _string(f"{where} value", "value", item)
            elif field.is_repeated:
                _entries(where, len(value))
                for i, item in enumerate(value):
                    _walk(item, f"{where}[{i}]")
            else:
                _walk(value, where)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                _entries(where, len(value))
                for i, item in enumerate(value):
                    _string(f"{where}[{i}]", field.name, item)
            else:
                _string(where, field.name, value)
        elif field.is_repeated:
            _entries(where, len(value))


def _is_map(descriptor: Descriptor) -> bool:
    return bool(descriptor.GetOptions().map_entry)


def _entries(where: str, count: int) -> None:
    if count > ENTRIES_MAX:
        raise InvalidRequestError(f"{where} has more than {ENTRIES_MAX} entries")


def _string(where: str, name: str, value: str) -> None:
    if name in _LABELS or name == "name" or name.endswith("_id"):
        validation.text(value, field=where, max_len=validation.NAME_MAX)
        return
    limit = DOCUMENT_MAX if name in _BUNDLES else LONG_TEXT_MAX if name in _LONG else PATH_MAX
    if len(value) > limit:
        raise InvalidRequestError(f"{where} is longer than {limit} characters")
    if "\0" in value:
        raise InvalidRequestError(f"{where} must not contain a NUL character")


def job_report(report: control_pb2.JobReport) -> control_pb2.JobReport:
    """The report with its free text cut and cleaned; refused only for malformed ids
    or more than ``LOG_LINES_MAX`` log lines (more than any device sends)."""
    if len(report.log) > LOG_LINES_MAX:
        raise InvalidRequestError(f"a job report holds at most {LOG_LINES_MAX} log lines")
    job = report.job
    for name in ("job_id", "item_id", "vault_id", "snapshot_id"):
        validation.text(getattr(job, name), field=f"job.{name}", max_len=validation.NAME_MAX)
    job.client_version = validation.clean(job.client_version, validation.SHORT_TEXT_MAX)
    job.error_message = validation.clean(job.error_message, ERROR_MESSAGE_MAX, lines=True)
    job.progress.current_path = validation.clean(job.progress.current_path, PATH_MAX)
    for entry in report.log:
        entry.message = validation.clean(entry.message, LOG_LINE_MAX, lines=True)
    return report
