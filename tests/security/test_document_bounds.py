"""Hostile free text from logged-in callers, against the real TLS server: profiles,
policies, dispatched commands and job reports carrying megabytes of garbage, NUL
bytes, over-long names or too many entries get a clear INVALID_ARGUMENT naming
the field and the limit, and nothing is written. Job reports are the exception
that keeps a device's history flowing: over-long or odd log text is cut, cleaned
and stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
import psycopg
import pytest

from comet.v1 import admin_pb2, common_pb2, control_pb2, notify_pb2
from tests.security.conftest import Cast
from tests.security.test_input_bounds import refused

pytestmark = pytest.mark.timeout(120)
MB = 1024 * 1024
GARBAGE = "\u00e9" * (2 * MB)  # 4 MiB on the wire, under the transport's limit
TABLES = (
    "audit_events",
    "policies",
    "jobs",
    "job_log",
    "remote_commands",
    "server_settings",
    "email_recipients",
    "webhooks",
)


def counts(cast: Cast) -> dict[str, int]:
    assert cast.server.database_url is not None
    with psycopg.connect(cast.server.database_url) as conn:
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone() for t in TABLES}
        profiles = conn.execute(
            "SELECT string_agg(profile::text || profile_version, ',' ORDER BY username) FROM users"
        ).fetchone()
    found = {t: int(row[0]) for t, row in rows.items() if row is not None}
    found["profiles"] = hash(profiles[0] if profiles else None)
    return found


def assert_refusals(cast: Cast, cases: list[tuple[str, Callable[[], object], str]]) -> None:
    """Each call is refused INVALID_ARGUMENT with a message holding ``expected``
    (the field and its limit), and the database is as it was."""
    before = counts(cast)
    for what, call, expected in cases:
        code, details = refused(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (what, code, details)
        assert expected in details, (what, details)
        assert "\n" not in details, details
    assert counts(cast) == before


def test_hostile_profiles_are_refused_naming_the_field(cast: Cast) -> None:
    md = cast.metadata["device"]
    current = cast.stubs.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=md)
    item, vault = len(current.items), len(current.vaults)  # the indexes of those added

    def put(change: Callable[[common_pb2.Profile], object]) -> Callable[[], object]:
        profile = common_pb2.Profile()
        profile.CopyFrom(current)
        profile.ClearField("policy")
        profile.items.add(item_id=str(uuid.uuid4()), name="docs", includes=["/home/alice"])
        profile.vaults.add(vault_id=str(uuid.uuid4()), name="v")
        profile.schedules.add(schedule_id=str(uuid.uuid4()))
        change(profile)
        return lambda: cast.stubs.agent.PutProfile(
            control_pb2.PutProfileRequest(profile=profile), metadata=md, timeout=30
        )

    def set_name(p: common_pb2.Profile) -> None:
        p.items[-1].name = "n" * 300

    def set_garbage(p: common_pb2.Profile) -> None:
        p.items[-1].program_command = GARBAGE

    def set_nul_path(p: common_pb2.Profile) -> None:
        p.items[-1].includes.append("/home/\x00alice")

    def set_long_path(p: common_pb2.Profile) -> None:
        p.items[-1].exclude_globs.append("*" * 5000)

    def set_many(p: common_pb2.Profile) -> None:
        p.items[-1].exclude_regexes.extend(["x"] * 10_001)

    def set_vault_name(p: common_pb2.Profile) -> None:
        p.vaults[-1].name = "v\x00"

    def set_schedule_id(p: common_pb2.Profile) -> None:
        p.schedules[-1].item_id = "i\x1b[31m"

    def set_local_path(p: common_pb2.Profile) -> None:
        p.vaults[-1].local.path = "/srv/\x00"

    assert_refusals(
        cast,
        [
            (
                "item name",
                put(set_name),
                f"profile.items[{item}].name is longer than 255 characters",
            ),
            ("megabytes of garbage", put(set_garbage), "the profile is larger than 1 MiB"),
            ("NUL in an include", put(set_nul_path), "must not contain a NUL character"),
            ("long pattern", put(set_long_path), "is longer than 4096 characters"),
            ("too many patterns", put(set_many), "has more than 10000 entries"),
            ("NUL in a vault name", put(set_vault_name), "must not contain control characters"),
            ("escape in an id", put(set_schedule_id), "item_id must not contain control"),
            ("NUL in a vault path", put(set_local_path), f"vaults[{vault}].local.path must not"),
        ],
    )


def test_hostile_policies_are_refused_naming_the_field(cast: Cast) -> None:
    md = cast.metadata["super"]

    def put(policy: common_pb2.Policy) -> Callable[[], object]:
        return lambda: cast.stubs.admin.PutPolicy(policy, metadata=md, timeout=30)

    exclusion = common_pb2.MandatoryExclusion
    assert_refusals(
        cast,
        [
            ("NUL in a name", put(common_pb2.Policy(name="p\x00")), "policy.name must not"),
            ("long name", put(common_pb2.Policy(name="p" * 1000)), "longer than 255"),
            (
                "garbage pattern",
                put(common_pb2.Policy(name="p", exclusions=[exclusion(pattern=GARBAGE)])),
                "the policy is larger than 1 MiB",
            ),
            (
                "NUL in a pattern",
                put(common_pb2.Policy(name="p", exclusions=[exclusion(pattern="*.tmp\x00")])),
                "policy.exclusions[0].pattern must not contain a NUL character",
            ),
            (
                "NUL in a default item",
                put(
                    common_pb2.Policy(
                        name="p", default_items=[common_pb2.ProtectedItem(name="a\x00")]
                    )
                ),
                "policy.default_items[0].name",
            ),
        ],
    )


def test_hostile_dispatch_arguments_are_refused_before_anything_is_recorded(cast: Cast) -> None:
    md = cast.metadata["super"]

    def dispatch(command: control_pb2.Command, device: str = "") -> Callable[[], object]:
        request = admin_pb2.DispatchRequest(
            device_id=device or cast.device_id, command=command, timeout_seconds=2
        )
        return lambda: cast.stubs.admin.Dispatch(request, metadata=md, timeout=30)

    def restore(**options: object) -> control_pb2.Command:
        return control_pb2.Command(
            run_restore=control_pb2.RunRestoreCommand(
                vault_id="v",
                snapshot_id="latest",
                options=common_pb2.RestoreOptions(**options),  # type: ignore[arg-type]
            )
        )

    browse = control_pb2.Command(browse_filesystem=control_pb2.BrowseFilesystemCommand(path="/"))
    assert_refusals(
        cast,
        [
            ("NUL in a path", dispatch(restore(paths=["/etc/\x00"])), "options.paths[0] must not"),
            ("garbage program", dispatch(restore(program_command=GARBAGE)), "larger than 1 MiB"),
            ("long destination", dispatch(restore(destination="/" * 5000)), "longer than 4096"),
            ("NUL in a device id", dispatch(browse, "dev\x00"), "the device id must not contain"),
        ],
    )


def test_hostile_notification_settings_are_refused_naming_the_field(cast: Cast) -> None:
    md = cast.metadata["super"]
    notify = cast.stubs.notify

    def call(method: Callable[..., object], request: object) -> Callable[[], object]:
        return lambda: method(request, metadata=md, timeout=30)

    smtp = notify_pb2.SmtpSettings
    assert_refusals(
        cast,
        [
            (
                "NUL in the SMTP host",
                call(notify.SetSmtpSettings, smtp(host="mail\x00.example.com")),
                "the SMTP settings.host must not contain control characters",
            ),
            (
                "garbage CA bundle",
                call(notify.SetSmtpSettings, smtp(host="mail.example.com", ca_pem=GARBAGE)),
                "the SMTP settings is larger than 1 MiB",
            ),
            (
                "escape in a recipient address",
                call(
                    notify.AddEmailRecipient,
                    notify_pb2.EmailRecipient(address="a@example.com\r\nBcc: x@evil"),
                ),
                "the email recipient.address must not contain control characters",
            ),
            (
                "NUL in a webhook URL",
                call(notify.AddWebhook, notify_pb2.AddWebhookRequest(url="https://x/\x00")),
                "the webhook.url must not contain a NUL character",
            ),
            (
                "long webhook URL",
                call(notify.AddWebhook, notify_pb2.AddWebhookRequest(url="https://" + "x" * 5000)),
                "the webhook.url is longer than 4096 characters",
            ),
            (
                "NUL in a recipient id",
                call(
                    notify.DeleteEmailRecipient,
                    notify_pb2.DeleteEmailRecipientRequest(recipient_id="r\x00"),
                ),
                "recipient_id must not contain control characters",
            ),
        ],
    )


def job(job_id: str, **fields: object) -> common_pb2.Job:
    return common_pb2.Job(
        job_id=job_id,
        classification=common_pb2.JOB_CLASSIFICATION_BACKUP,
        status=common_pb2.JOB_STATUS_RUNNING,
        **fields,  # type: ignore[arg-type]
    )


def test_job_reports_with_bad_ids_or_too_many_lines_are_refused(cast: Cast) -> None:
    md = cast.metadata["device"]

    def report(request: control_pb2.JobReport) -> Callable[[], object]:
        return lambda: cast.stubs.agent.ReportJob(request, metadata=md, timeout=30)

    line = common_pb2.LogEntry(message="hello")
    many = [common_pb2.LogEntry(seq=i + 1, message="x") for i in range(1001)]
    assert_refusals(
        cast,
        [
            ("NUL in a job id", report(control_pb2.JobReport(job=job("j\x00"))), "job.job_id"),
            ("huge job id", report(control_pb2.JobReport(job=job("j" * MB))), "longer than 255"),
            (
                "NUL in a vault id",
                report(control_pb2.JobReport(job=job(str(uuid.uuid4()), vault_id="\x00"))),
                "job.vault_id must not contain control characters",
            ),
            (
                "too many lines",
                report(control_pb2.JobReport(job=job(str(uuid.uuid4())), log=[line, *many])),
                "at most 1000 log lines",
            ),
        ],
    )


def test_over_long_and_odd_log_lines_are_cut_and_stored(cast: Cast) -> None:
    job_id = str(uuid.uuid4())
    lines = [
        common_pb2.LogEntry(seq=1, message="z" * (3 * MB)),
        common_pb2.LogEntry(seq=2, message="bad\x00byte and\x1b[2J escape\nsecond line\tok"),
        common_pb2.LogEntry(seq=3, message="plain"),
    ]
    ack = cast.stubs.agent.ReportJob(
        control_pb2.JobReport(
            job=job(job_id, error_message="e\x00" * MB, client_version="1.0\x00"),
            log=lines,
        ),
        metadata=cast.metadata["device"],
        timeout=30,
    )
    assert ack.last_log_seq == 3
    stored = cast.stubs.admin.GetJobLog(
        admin_pb2.GetJobLogRequest(job_id=job_id), metadata=cast.metadata["super"], timeout=30
    )
    device_lines = {e.seq: e.message for e in stored.entries if e.seq > 0}
    assert len(device_lines[1]) == 8192 and device_lines[1].endswith("…")
    assert device_lines[2] == "bad\ufffdbyte and\ufffd[2J escape\nsecond line\tok"
    assert device_lines[3] == "plain"
    assert len(stored.job.error_message) == 16 * 1024
    assert "\x00" not in stored.job.error_message
    assert stored.job.client_version == "1.0\ufffd"
