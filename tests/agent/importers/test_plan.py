"""plan_import(): each sample setup becomes the expected items, vaults, schedules and
retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from comet.agent.importers import ImportPlan, ImportSource, detect, plan_import
from comet.agent.items import ItemType
from comet.agent.maintenance.retention import RangeType, RetentionMode, RetentionRange
from comet.agent.scheduler.frequency import Frequency
from comet.agent.vaults import LocalSettings, S3Settings, SftpSettings, VaultType
from tests.agent.importers.samples import ENVIRONMENT, Tree, sample_tree

DEFAULT_2AM = (Frequency.DAILY, 2, 0)


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return sample_tree(tmp_path)


def source(tree: Tree, path: Path | None, section: str = "") -> ImportSource:
    found = detect(home=tree.home, etc=tree.etc, env=ENVIRONMENT).sources
    return next(s for s in found if s.path == path and s.section == section)


def timings(plan: ImportPlan) -> set[tuple[Frequency, int, int]]:
    return {(s.timing.frequency, s.timing.hour, s.timing.minute) for s in plan.schedules}


def pairs(plan: ImportPlan) -> list[tuple[int, int]]:
    return [(s.item_index, s.vault_index) for s in plan.schedules]


def test_modern_borgmatic(tree: Tree) -> None:
    plan = plan_import(source(tree, tree.modern_borgmatic))

    files, database = plan.items
    assert files.type is ItemType.FILES and files.item_id == ""
    assert files.includes == ("/home/alice", "/etc", f"{tree.home}/projects")
    assert files.exclude_globs == ("*.pyc", "/home/*/.cache", "/home/alice/tmp", "/etc/shadow-")
    assert files.exclude_regexes == (
        "^/home/alice/(?:[^/]*/)*node_modules(?:/|$)",
        r"^/home/alice/Downloads/.*\.iso$",
    )
    assert files.pre_commands == ('echo "Starting a backup."',)
    assert files.post_commands == ('echo "Finished a backup."',)
    assert database.type is ItemType.PROGRAM
    assert database.program_command == (
        "pg_dump --format=custom --host db.internal --username backup inventory"
    )
    assert database.program_save_as == "postgresql-inventory.dump"

    nas, usb = plan.vaults
    assert (nas.name, nas.type) == ("nas-comet", VaultType.SFTP)
    assert nas.settings == SftpSettings(
        host="nas.example.net", port=2222, username="backup", path="borg/alice-comet"
    )
    assert nas.missing_secrets == ("private_key", "password")
    assert (usb.name, usb.type) == ("usb-comet", VaultType.LOCAL)
    assert usb.settings == LocalSettings("/mnt/usb/borg-comet")
    assert usb.missing_secrets == ()

    assert pairs(plan) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert timings(plan) == {DEFAULT_2AM}

    assert plan.retention.mode is RetentionMode.DELETE_EXCEPT
    assert plan.retention.ranges == (
        RetentionRange(RangeType.JOBS_SINCE, days=2),
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_DAY, jobs=7),
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_WEEK, jobs=4),
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_MONTH, jobs=12),  # keep_yearly 1
    )

    text = "\n".join(plan.warnings)
    for expected in ("exclude_caches", "~/.pgpass", "keep_yearly", "cron or a systemd timer"):
        assert expected in text
    assert "never imported" not in str(plan.items)  # the passphrase went nowhere


def test_legacy_sectioned_borgmatic(tree: Tree) -> None:
    plan = plan_import(source(tree, tree.legacy_borgmatic))

    files, wordpress, everything = plan.items
    assert files.includes == ("/srv/www", "/var/lib/app")
    assert files.exclude_globs == ("/srv/www/cache",)
    assert files.pre_commands == ("systemctl stop app",)
    assert files.post_commands == ("systemctl start app",)
    assert wordpress.program_command == "mysqldump wordpress"
    assert wordpress.program_save_as == "mysql-wordpress.sql"
    assert everything.program_command == "mysqldump --host db --all-databases"

    remote, local = plan.vaults
    assert remote.settings == SftpSettings(
        host="backup.example.org", port=22, username="backup", path="repos/web-comet"
    )
    assert local.settings == LocalSettings("/var/backups/borg-comet")
    assert len(plan.schedules) == 6
    assert plan.retention.ranges == (RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_DAY, jobs=7),)
    assert any("keep_hourly 24" in w for w in plan.warnings)
    assert any("one_file_system" in w for w in plan.warnings)


def test_resticprofile_profiles_are_separate_sources(tree: Tree) -> None:
    default = plan_import(source(tree, tree.resticprofile, "default"))
    offsite = plan_import(source(tree, tree.resticprofile, "offsite"))

    (item,) = default.items
    assert item.includes == (f"{tree.home}/Documents", f"{tree.home}/Pictures")
    assert item.exclude_globs == ("*.tmp", "/home/alice/Documents/scratch")
    assert item.exclude_regexes == (
        "^/(?:[^/]*/)*node_modules/cache(?:/|$)",
        r"(?i)^/(?:[^/]*/)*[^/]*\.ISO(?:/|$)",
    )
    assert item.pre_commands == ("echo before",)
    assert [v.settings for v in default.vaults] == [LocalSettings("/srv/restic/home-comet")]
    assert timings(default) == {(Frequency.DAILY, 1, 30)}
    assert default.retention.ranges == (
        RetentionRange(RangeType.MOST_RECENT_JOBS, jobs=10),
        RetentionRange(RangeType.JOBS_SINCE, months=18),
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_DAY, jobs=14),
    )
    assert any("'!keep.tmp'" in w for w in default.warnings)
    assert any("keep-tag" in w for w in default.warnings)

    # "offsite" inherits excludes and retention from "default" and overrides the rest.
    (item,) = offsite.items
    assert item.includes == ("/etc",)
    assert item.exclude_globs == ("*.tmp", "/home/alice/Documents/scratch")
    (vault,) = offsite.vaults
    assert vault.type is VaultType.S3
    assert vault.settings == S3Settings(
        endpoint="",
        bucket="alice-backups",
        prefix="comet/laptop/",
        access_key="",
        secret_key="",
        region="eu-central-1",
    )
    assert vault.missing_secrets == ("access_key", "secret_key")
    (schedule,) = offsite.schedules
    assert schedule.timing.frequency is Frequency.WEEKLY
    assert schedule.timing.weekdays == frozenset({0, 1, 2, 3, 4})
    assert (schedule.timing.hour, schedule.timing.minute) == (3, 15)
    assert offsite.retention.ranges[-1] == RetentionRange(
        RangeType.LAST_BACKUPS_ONE_PER_WEEK, jobs=8
    )


def test_autorestic_location(tree: Tree) -> None:
    plan = plan_import(source(tree, tree.autorestic, "home"))

    (item,) = plan.items
    assert item.includes == ("/home/alice", f"{tree.home}/notes")
    assert item.exclude_globs == (".cache", "*.log")
    assert item.pre_commands == ('echo "autorestic start"',)
    assert item.post_commands == ('echo "autorestic done"',)
    local, remote = plan.vaults
    assert local.settings == LocalSettings("/mnt/backup/restic-comet")
    assert remote.settings == SftpSettings(
        host="backup.example.org", port=22, username="alice", path="/srv/restic/alice-comet"
    )
    assert timings(plan) == {(Frequency.DAILY, 3, 0)}
    assert pairs(plan) == [(0, 0), (0, 1)]
    assert plan.retention.ranges == (
        RetentionRange(RangeType.MOST_RECENT_JOBS, jobs=5),
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_WEEK, jobs=4),
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_MONTH, jobs=12),
    )
    assert "do-not-import" not in repr(plan)


def test_restic_env_file(tree: Tree) -> None:
    plan = plan_import(source(tree, tree.restic_env))

    (item,) = plan.items
    assert item.includes == ("/home/alice/Music", "/home/alice/Videos")
    assert item.exclude_globs == ("*.iso", "/home/alice/Videos/raw")
    (vault,) = plan.vaults
    assert vault.settings == SftpSettings(
        host="files.example.com", port=22, username="alice", path="/backups/laptop-comet"
    )
    assert timings(plan) == {DEFAULT_2AM}
    assert plan.retention.ranges == (
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_DAY, jobs=7),
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_WEEK, jobs=5),
        RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_MONTH, jobs=3),
    )
    assert "should-not-be-read" not in repr(plan)
    assert any("password file" in w for w in plan.warnings)


def test_no_retention_keeps_everything(tree: Tree) -> None:
    plan = plan_import(source(tree, None))

    assert plan.retention.mode is RetentionMode.KEEP_EVERYTHING
    assert plan.retention.ranges == ()


def test_schedule_plans_become_schedule_specs(tree: Tree) -> None:
    plan = plan_import(source(tree, tree.resticprofile, "offsite"))

    spec = plan.schedules[0].to_spec(schedule_id="s1", item_id="i1", vault_id="v1")

    assert (spec.schedule_id, spec.item_id, spec.vault_id) == ("s1", "i1", "v1")
    assert spec.frequency is Frequency.WEEKLY
    assert spec.weekdays == frozenset({0, 1, 2, 3, 4})
    assert plan.vaults[0].to_spec(vault_id="v1").settings == plan.vaults[0].settings


def test_unmappable_cron_falls_back_to_daily_2am(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".autorestic.yml").write_text(
        "locations:\n  l:\n    from: /data\n    to: b\n    cron: '*/15 * * * *'\n"
        "backends:\n  b:\n    type: rest\n    path: http://backup:8000/\n"
    )
    (found,) = detect(home=home, etc=tmp_path / "etc", env={}).sources

    plan = plan_import(found)

    assert plan.vaults == [] and plan.schedules == []
    assert any("rest" in w and "create a Storage Vault" in w for w in plan.warnings)
    # No schedule is made without a vault, so none is said to be proposed.
    assert any("'*/15 * * * *'" in w for w in plan.warnings)
    assert not any("02:00" in w for w in plan.warnings)
