"""``comet schedule add|list``: when an item's backup to a vault runs by itself."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from comet.agent.client_cli.common import AgentClient, CliError
from comet.agent.output import print_json, print_table, rfc3339
from comet.v1 import agent_api_pb2, common_pb2

if TYPE_CHECKING:
    from comet.agent.client_cli.common import Subcommands


DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _hhmm(text: str) -> tuple[int, int]:
    try:
        hour, minute = (int(part) for part in text.split(":"))
    except ValueError as e:
        raise CliError(f"a time is HH:MM, not {text!r}") from e
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise CliError(f"a time is HH:MM, not {text!r}")
    return hour, minute


def _weekday(text: str) -> int:
    key = text.lower()[:3]
    if key not in DAYS:
        raise CliError(f"a weekday is one of {', '.join(DAYS)}, not {text!r}")
    return DAYS.index(key)


def set_when(schedule: common_pb2.Schedule, args: argparse.Namespace) -> bool:
    """Apply ``--daily/--hourly/--weekly/--monthly/--every``; False if none was given."""
    if args.daily:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_DAILY
        schedule.hour, schedule.minute = _hhmm(args.daily)
    elif args.hourly is not None:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_HOURLY
        schedule.minute = args.hourly
    elif args.weekly:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_WEEKLY
        del schedule.weekdays[:]
        schedule.weekdays.append(_weekday(args.weekly[0]))
        schedule.hour, schedule.minute = _hhmm(args.weekly[1])
    elif args.monthly:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_MONTHLY
        schedule.day_of_month = int(args.monthly[0])
        schedule.hour, schedule.minute = _hhmm(args.monthly[1])
    elif args.every:
        schedule.frequency = common_pb2.SCHEDULE_FREQUENCY_PERIODIC
        schedule.every_seconds = args.every
    else:
        return False
    return True


def add_when_arguments(parser: argparse.ArgumentParser) -> None:
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--daily", metavar="HH:MM")
    when.add_argument("--hourly", metavar="MIN", type=int, nargs="?", const=0)
    when.add_argument("--weekly", nargs=2, metavar=("DAY", "HH:MM"))
    when.add_argument("--monthly", nargs=2, metavar=("DAY_OF_MONTH", "HH:MM"))
    when.add_argument("--every", metavar="SECONDS", type=int)


def cmd_schedule_add(client: AgentClient, args: argparse.Namespace) -> None:
    schedule = common_pb2.Schedule(
        item_id=args.item,
        vault_id=args.vault,
        skip_if_running=args.skip_if_running,
        stop_after_seconds=args.stop_after or 0,
        retry_count=args.retries or 0,
        retry_delay_seconds=args.retry_delay or 0,
        random_delay_seconds=args.random_delay or 0,
        run_at_boot=args.run_at_boot,
        run_at_boot_if_missed=args.run_at_boot_if_missed,
        bandwidth_limit_bps=args.bandwidth_limit or 0,
    )
    if not set_when(schedule, args):
        raise CliError(
            "say when: --daily HH:MM, --hourly [MIN], --weekly DAY HH:MM, "
            "--monthly DAY HH:MM or --every SECONDS"
        )
    saved = client.api.AddSchedule(agent_api_pb2.AddScheduleRequest(schedule=schedule), timeout=60)
    if args.json:
        print_json({"schedule_id": saved.schedule_id})
    else:
        print(saved.schedule_id)


def schedule_json(s: common_pb2.Schedule) -> dict[str, Any]:
    when = {
        common_pb2.SCHEDULE_FREQUENCY_DAILY: f"daily {s.hour:02d}:{s.minute:02d}",
        common_pb2.SCHEDULE_FREQUENCY_HOURLY: f"hourly at :{s.minute:02d}",
        common_pb2.SCHEDULE_FREQUENCY_WEEKLY: "weekly "
        + ",".join(DAYS[d] for d in s.weekdays if d < 7)
        + f" {s.hour:02d}:{s.minute:02d}",
        common_pb2.SCHEDULE_FREQUENCY_MONTHLY: f"monthly day {s.day_of_month} "
        f"{s.hour:02d}:{s.minute:02d}",
        common_pb2.SCHEDULE_FREQUENCY_PERIODIC: f"every {s.every_seconds} s",
        common_pb2.SCHEDULE_FREQUENCY_ONCE: f"once at {rfc3339(s.once_at)}",
    }.get(s.frequency, "?")
    return {
        "schedule_id": s.schedule_id,
        "item_id": s.item_id,
        "vault_id": s.vault_id,
        "frequency": common_pb2.ScheduleFrequency.Name(s.frequency)
        .removeprefix("SCHEDULE_FREQUENCY_")
        .lower(),
        "frequency_code": s.frequency,
        "when": when,
        "enabled": s.enabled,
        "skip_if_running": s.skip_if_running,
        "stop_after_seconds": s.stop_after_seconds,
    }


def cmd_schedule_list(client: AgentClient, args: argparse.Namespace) -> None:
    profile = client.api.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=60)
    items = {i.item_id: i.name for i in profile.items}
    vaults = {v.vault_id: v.name for v in profile.vaults}
    rows = [
        {
            **schedule_json(s),
            "item_name": items.get(s.item_id),
            "vault_name": vaults.get(s.vault_id),
        }
        for s in profile.schedules
    ]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["schedule_id", "item_name", "vault_name", "when", "enabled"])


def register(sub: Subcommands) -> None:
    schedule = sub.add_parser("schedule", help="schedules").add_subparsers(
        dest="sub", required=True
    )
    sadd = schedule.add_parser("add", help="run an item's backup to a vault on a schedule")
    sadd.add_argument("--item", required=True)
    sadd.add_argument("--vault", required=True)
    add_when_arguments(sadd)
    sadd.add_argument("--skip-if-running", action="store_true")
    sadd.add_argument("--stop-after", type=int, metavar="SECONDS")
    sadd.add_argument("--retries", type=int)
    sadd.add_argument("--retry-delay", type=int, metavar="SECONDS")
    sadd.add_argument("--random-delay", type=int, metavar="SECONDS")
    sadd.add_argument("--bandwidth-limit", type=int, metavar="BYTES_PER_S")
    sadd.add_argument("--run-at-boot", action="store_true")
    sadd.add_argument("--run-at-boot-if-missed", action="store_true")
    sadd.add_argument("--json", action="store_true")
    sadd.set_defaults(func=cmd_schedule_add)
    slist = schedule.add_parser("list", help="list schedules")
    slist.add_argument("--json", action="store_true")
    slist.set_defaults(func=cmd_schedule_list)
    from comet.agent.client_cli import profile_edit  # it builds on this module

    profile_edit.add_schedule_commands(schedule)
