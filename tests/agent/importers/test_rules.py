"""Retention, schedule and repository mapping rules, one table each."""

from __future__ import annotations

from pathlib import Path

import pytest

from comet.agent.importers.foreign import ForeignRepository, KeepRules, RepositoryDialect
from comet.agent.importers.repositories import vault_for
from comet.agent.importers.retention import keep_rules_from, retention_policy
from comet.agent.importers.timing import from_cron, from_on_calendar
from comet.agent.maintenance.retention import RangeType, RetentionMode, RetentionRange
from comet.agent.scheduler.frequency import Frequency
from comet.agent.vaults import LocalSettings, S3Settings, SftpSettings, VaultType

HOME = Path("/home/alice")
D, H, W, M = Frequency.DAILY, Frequency.HOURLY, Frequency.WEEKLY, Frequency.MONTHLY


@pytest.mark.parametrize(
    ("within", "expected"),
    [
        ("2d", RetentionRange(RangeType.JOBS_SINCE, days=2)),
        ("4w", RetentionRange(RangeType.JOBS_SINCE, weeks=4)),
        ("6m", RetentionRange(RangeType.JOBS_SINCE, months=6)),
        ("1y", RetentionRange(RangeType.JOBS_SINCE, months=12)),
        ("1y2m3d", RetentionRange(RangeType.JOBS_SINCE, months=14, days=3)),
        ("36H", RetentionRange(RangeType.JOBS_SINCE, days=2)),
    ],
)
def test_keep_within(within: str, expected: RetentionRange) -> None:
    policy, warnings = retention_policy(KeepRules(within=within))

    assert policy.mode is RetentionMode.DELETE_EXCEPT
    assert policy.ranges == (expected,)
    assert bool(warnings) == within.endswith("H")


def test_retention_edge_cases() -> None:
    assert retention_policy(KeepRules())[0].mode is RetentionMode.KEEP_EVERYTHING
    policy, warnings = retention_policy(KeepRules(hourly=48))
    assert policy.mode is RetentionMode.KEEP_EVERYTHING and "keep_hourly" in warnings[0]
    policy, warnings = retention_policy(KeepRules(last=-1, daily=7))
    assert policy.mode is RetentionMode.KEEP_EVERYTHING and "unlimited" in warnings[0]
    policy, warnings = retention_policy(KeepRules(within="forever"))
    assert policy.mode is RetentionMode.KEEP_EVERYTHING and "forever" in warnings[0]
    policy, _ = retention_policy(KeepRules(monthly=36, yearly=2))
    assert policy.ranges == (RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_MONTH, jobs=36),)


def test_keep_rules_accept_strings_and_report_unknown_keys() -> None:
    rules = keep_rules_from(
        {"keep-daily": "7", "keep-tag": ["x"], "keep-weekly": "lots", "host": "h"},
        separator="-",
    )

    assert rules.daily == 7
    assert rules.unsupported == ("keep-tag", "keep-weekly='lots'")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 3 * * *", (D, 3, 0, frozenset(), 1)),
        ("30 * * * *", (H, 0, 30, frozenset(), 1)),
        ("15 4 * * 1-5", (W, 4, 15, frozenset({0, 1, 2, 3, 4}), 1)),
        ("0 1 * * 0,6", (W, 1, 0, frozenset({5, 6}), 1)),
        ("0 1 * * sun", (W, 1, 0, frozenset({6}), 1)),
        ("0 5 15 * *", (M, 5, 0, frozenset(), 15)),
        ("@daily", (D, 0, 0, frozenset(), 1)),
        ("@weekly", (W, 0, 0, frozenset({6}), 1)),
    ],
)
def test_cron(expression: str, expected: tuple[object, ...]) -> None:
    timing, why = from_cron(expression)

    assert timing is not None, why
    got = (timing.frequency, timing.hour, timing.minute, timing.weekdays, timing.day_of_month)
    assert got == expected


@pytest.mark.parametrize(
    "expression", ["*/15 * * * *", "0 2,14 * * *", "0 3 * 1 *", "0 3 1 * 1", "0 3 * *", "x"]
)
def test_cron_that_does_not_map(expression: str) -> None:
    timing, why = from_cron(expression)

    assert timing is None and repr(expression) in why


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("daily", (D, 0, 0, frozenset(), 1)),
        ("hourly", (H, 0, 0, frozenset(), 1)),
        ("*-*-* 02:45", (D, 2, 45, frozenset(), 1)),
        ("04:00", (D, 4, 0, frozenset(), 1)),
        ("*:20", (H, 0, 20, frozenset(), 1)),
        ("Sat,Sun *-*-* 10:00:00", (W, 10, 0, frozenset({5, 6}), 1)),
        ("*-*-01 03:00", (M, 3, 0, frozenset(), 1)),
    ],
)
def test_on_calendar(expression: str, expected: tuple[object, ...]) -> None:
    timing, why = from_on_calendar(expression)

    assert timing is not None, why
    got = (timing.frequency, timing.hour, timing.minute, timing.weekdays, timing.day_of_month)
    assert got == expected


@pytest.mark.parametrize("expression", ["minutely", "*-*-* 02,14:00", "2024-*-* 03:00"])
def test_on_calendar_that_does_not_map(expression: str) -> None:
    assert from_on_calendar(expression)[0] is None


BORG, RESTIC = RepositoryDialect.BORG, RepositoryDialect.RESTIC


@pytest.mark.parametrize(
    ("location", "dialect", "settings"),
    [
        ("/backup/borg", BORG, LocalSettings("/backup/borg-comet")),
        ("~/borg", BORG, LocalSettings("/home/alice/borg-comet")),
        ("file:///backup/borg/", BORG, LocalSettings("/backup/borg-comet")),
        ("nas:borg", BORG, SftpSettings(host="nas", port=22, username="", path="borg-comet")),
        (
            "ssh://u@h.example:2200/~/repo",
            BORG,
            SftpSettings(host="h.example", port=2200, username="u", path="repo-comet"),
        ),
        (
            "ssh://u@h/srv/borg",
            BORG,
            SftpSettings(host="h", port=22, username="u", path="/srv/borg-comet"),
        ),
        ("local:/srv/restic", RESTIC, LocalSettings("/srv/restic-comet")),
        (
            "sftp://u@h:2222//srv/restic",
            RESTIC,
            SftpSettings(host="h", port=2222, username="u", path="/srv/restic-comet"),
        ),
        (
            "sftp:u@h:restic",
            RESTIC,
            SftpSettings(host="h", port=22, username="u", path="restic-comet"),
        ),
        (
            "s3:https://minio.lan:9000/bucket",
            RESTIC,
            S3Settings("https://minio.lan:9000", "bucket", "comet/", "", ""),
        ),
        (
            "s3:s3.amazonaws.com/bucket/a/b",
            RESTIC,
            S3Settings("", "bucket", "comet/a/b/", "", ""),
        ),
    ],
)
def test_vault_for(location: str, dialect: RepositoryDialect, settings: object) -> None:
    vault, why = vault_for(ForeignRepository(location, dialect), home=HOME)

    assert vault is not None, why
    assert vault.settings == settings
    assert vault.foreign_repository == location
    assert (
        vault.type
        is {
            LocalSettings: VaultType.LOCAL,
            SftpSettings: VaultType.SFTP,
            S3Settings: VaultType.S3,
        }[type(settings)]
    )


@pytest.mark.parametrize(
    ("location", "dialect"),
    [
        ("rest:https://backup.lan:8000/", RESTIC),
        ("b2:bucket:path", RESTIC),
        ("rclone:remote:path", RESTIC),
        ("relative/repo", BORG),
        ("relative/repo", RESTIC),
    ],
)
def test_vault_for_unsupported(location: str, dialect: RepositoryDialect) -> None:
    vault, why = vault_for(ForeignRepository(location, dialect), home=HOME)

    assert vault is None
    assert repr(location) in why and "yourself" in why
