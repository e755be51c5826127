"""The schedule editor sets every option the agent's scheduler has, and each survives the
form, the wire and a save through the real agent and server unchanged. The tray menu
shows the status and starts a real backup with "Back up now"."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PyQt6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comet.agent import convert as agent_convert
from comet.gui import convert
from comet.gui.agent_client import AgentClient
from comet.gui.records import (
    AgentStatus,
    Frequency,
    JobStatus,
    Profile,
    RetentionTiming,
    Schedule,
)
from comet.gui.schedule_form import ScheduleForm, UnitSpin
from comet.gui.screenshots import wait_for
from comet.gui.theme import Tone
from comet.gui.tray import TrayMenu, status_line
from tests.fixtures.processes import AgentProcess
from tests.gui.driving import SLOW, vault_and_item


def every_option(kind: Frequency, item_id: str = "item-1", vault_id: str = "vault-1") -> Schedule:
    """A schedule of ``kind`` with every option away from its default."""
    once = kind is Frequency.ONCE
    tomorrow = (datetime.now().astimezone() + timedelta(days=1)).replace(second=0, microsecond=0)
    return Schedule(
        schedule_id="s-1",
        item_id=item_id,
        vault_id=vault_id,
        frequency=kind,
        hour=21 if kind in (Frequency.DAILY, Frequency.WEEKLY, Frequency.MONTHLY) else 0,
        minute={Frequency.ONCE: 0, Frequency.PERIODIC: 0}.get(kind, 45),
        weekdays=() if once else (1, 3) if kind is Frequency.WEEKLY else (0, 4),
        every_seconds=5400 if kind is Frequency.PERIODIC else 0,
        skip_if_running=True,
        stop_after_seconds=7200,
        enabled=False,
        once_at=tomorrow if once else None,
        day_of_month=31 if kind is Frequency.MONTHLY else 1,
        offset_seconds=1200 if kind is Frequency.PERIODIC else 0,
        window_start_minute=None if once else 22 * 60 + 30,
        window_end_minute=None if once else 5 * 60,
        random_delay_seconds=0 if once else 900,
        run_at_boot=True,
        run_at_boot_if_missed=True,
        retry_count=3,
        retry_delay_seconds=90,
        bandwidth_limit_bps=5 * 1024 * 1024,
        retention_timing=RetentionTiming.LESS_OFTEN,
    )


@pytest.mark.parametrize("kind", list(Frequency), ids=lambda k: k.name.lower())
def test_every_schedule_option_survives_the_form_and_the_wire(
    qtbot: QtBot, qapp: QApplication, kind: Frequency
) -> None:
    schedule = every_option(kind)
    form = ScheduleForm()
    qtbot.addWidget(form)
    form.set_schedule(schedule)
    assert form.problem() == ""
    assert form.schedule(schedule.item_id, schedule.vault_id) == schedule

    message = convert.schedule_to_proto(schedule)
    assert convert.schedule_from_proto(message) == schedule
    # The agent's scheduler takes it as it is: the same timing and job options.
    spec = agent_convert.schedule_from_proto(message)
    assert spec is not None
    assert (spec.window_start_minute, spec.window_end_minute) == (
        schedule.window_start_minute,
        schedule.window_end_minute,
    )
    assert spec.random_delay_seconds == schedule.random_delay_seconds
    assert (spec.retry_count, spec.retry_delay_seconds) == (3, 90)
    assert spec.run_at_boot and spec.run_at_boot_if_missed and spec.skip_if_running
    assert spec.stop_after_seconds == 7200 and not spec.enabled
    assert spec.day_of_month == schedule.day_of_month
    assert spec.offset_seconds == schedule.offset_seconds
    assert spec.once_at == schedule.once_at


def test_the_form_refuses_what_the_scheduler_would(qtbot: QtBot, qapp: QApplication) -> None:
    form = ScheduleForm()
    qtbot.addWidget(form)
    form.set_schedule(replace(every_option(Frequency.WEEKLY), weekdays=()))
    assert "at least one day" in form.problem()
    form.set_schedule(every_option(Frequency.DAILY))
    form.window_end.setTime(form.window_start.time())
    assert "different start and end" in form.problem()
    past = replace(every_option(Frequency.ONCE), once_at=datetime.now(UTC) - timedelta(hours=1))
    form.set_schedule(past)
    assert "future" in form.problem()


def test_durations_and_rates_keep_their_exact_value(qtbot: QtBot, qapp: QApplication) -> None:
    spin = UnitSpin((("seconds", 1), ("minutes", 60), ("hours", 3600)))
    qtbot.addWidget(spin)
    for value, unit in ((90, "seconds"), (7200, "hours"), (600, "minutes"), (0, "seconds")):
        spin.set_value(value)
        assert (spin.value(), spin.unit.currentText()) == (value, unit)


def test_tray_status_line_says_what_needs_attention() -> None:
    online = AgentStatus(connected=True)
    assert status_line(AgentStatus(last_error="refused"), 0, None) == (
        "Not connected to the server (refused)",
        Tone.WARNING,
    )
    assert status_line(online, 2, JobStatus.SUCCESS) == ("2 jobs running", Tone.RUNNING)
    assert status_line(online, 0, JobStatus.SUCCESS)[1] is Tone.OK
    assert status_line(online, 0, JobStatus.ERROR) == (
        "Last backup failed (error)",
        Tone.ERROR,
    )
    assert status_line(online, 0, None)[1] is Tone.MUTED


def _profile(client: AgentClient) -> Profile:
    profile = wait_for(client.get_profile(refetch=True), timeout=SLOW / 1000)
    assert isinstance(profile, Profile), profile
    return profile


def test_schedule_saved_from_the_app_and_tray_backup_through_the_real_agent(
    qtbot: QtBot, alice: AgentProcess, client: AgentClient, short_tmp: Path
) -> None:
    vault_and_item(alice, short_tmp, vault="disk", backup=False)
    profile = _profile(client)
    (item,) = profile.items
    (vault,) = profile.vaults

    # Every option, saved as the item editor saves it, comes back unchanged.
    schedule = replace(every_option(Frequency.WEEKLY, item.item_id, vault.vault_id), schedule_id="")
    saved = wait_for(client.save_item(item, (schedule,), base_version=profile.version))
    assert not hasattr(saved, "code"), saved
    (stored,) = _profile(client).schedules
    assert stored == replace(schedule, schedule_id=stored.schedule_id)
    (listed,) = alice.comet("schedule", "list", "--json").json()
    assert listed["when"] == "weekly tue,thu 21:45"
    assert listed["skip_if_running"] and listed["stop_after_seconds"] == 7200

    # The tray: its status, and "Back up now" for the item and vault.
    status = wait_for(client.status())
    assert isinstance(status, AgentStatus)
    tray = TrayMenu(client, use_tray=False)
    tray.set_status(status)
    tray.set_profile(_profile(client))
    assert tray.status_text() == "Connected; no backup yet"
    actions = tray.backup_actions()
    assert [a.text() for a in actions] == ["“docs” to “disk”"]
    with qtbot.waitSignal(tray.job_started, timeout=SLOW) as started:
        actions[0].trigger()
    job_id = started.args[0].job_id
    assert tray.message.startswith("Backup started")

    def ended() -> bool:
        jobs = wait_for(client.history())
        return any(j.job_id == job_id and not j.status.running for j in jobs)

    qtbot.waitUntil(ended, timeout=SLOW)
    tray.set_history(wait_for(client.history()))
    assert tray.status_text() == "Last backup succeeded"
    assert tray.current_icon().pixmap(16, 16).toImage().pixelColor(8, 8) == Tone.OK.colour

    # Where a tray exists, the icon carries the same menu and status.
    shown = TrayMenu(client, use_tray=True)
    shown.set_status(status)
    assert shown.icon is not None and shown.icon.contextMenu() is shown.menu
    assert "Comet Backup" in shown.icon.toolTip()
    shown.hide()
