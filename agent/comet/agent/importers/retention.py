"""Mapping borg/restic ``keep_*`` rules onto a Comet retention policy.

* keep_last N → 900 (most recent N jobs)
* keep_within ``2d``/``4w``/``6m``/``1y`` (or combinations such as ``1y6m``) → 902;
  hours and shorter are rounded up to whole days, with a warning
* keep_daily → 907, keep_weekly → 908, keep_monthly → 909 (one per day/week/month)
* keep_yearly N → 909 with 12 * N months (a warning says so); it merges with keep_monthly,
  since two 909 ranges keep what the larger one keeps
* keep_hourly (and shorter periods, tags, ...) → left out, with a warning
* nothing set → 801 keep everything; an "unlimited" (negative) count keeps everything too
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from comet.agent.importers.foreign import KeepRules
from comet.agent.maintenance.retention import (
    RangeType,
    RetentionMode,
    RetentionPolicy,
    RetentionRange,
)

_KNOWN = ("last", "hourly", "daily", "weekly", "monthly", "yearly", "within")
_DURATION_PART = re.compile(r"(\d+)([a-zA-Z])")


def keep_rules_from(settings: Mapping[str, object], *, separator: str) -> KeepRules:
    """``keep_*`` (borg, ``separator="_"``) or ``keep-*`` (restic, ``"-"``) settings of a
    mapping; keys that do not start with ``keep`` are ignored."""
    prefix = f"keep{separator}"
    counts: dict[str, int] = {}
    within = ""
    unsupported: list[str] = []
    for key, value in settings.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name == "within" and isinstance(value, str | int):
            within = str(value).strip()
        elif name in _KNOWN and isinstance(value, int | str) and not isinstance(value, bool):
            try:
                counts[name] = int(value)
            except ValueError:
                unsupported.append(f"{key}={value!r}")
        else:
            unsupported.append(key)
    return KeepRules(
        last=counts.get("last", 0),
        hourly=counts.get("hourly", 0),
        daily=counts.get("daily", 0),
        weekly=counts.get("weekly", 0),
        monthly=counts.get("monthly", 0),
        yearly=counts.get("yearly", 0),
        within=within,
        unsupported=tuple(unsupported),
    )


def retention_policy(keep: KeepRules) -> tuple[RetentionPolicy, list[str]]:
    """The Comet policy for ``keep`` and the approximations made, one warning each."""
    warnings = [f"retention rule {u} has no Comet equivalent; left out" for u in keep.unsupported]
    counts = {
        "keep_last": keep.last,
        "keep_daily": keep.daily,
        "keep_weekly": keep.weekly,
        "keep_monthly": keep.monthly,
        "keep_yearly": keep.yearly,
    }
    unlimited = [name for name, n in counts.items() if n < 0]
    if unlimited:
        warnings.append(
            f"{', '.join(unlimited)} is unlimited; the new vault keeps every snapshot instead"
        )
        return RetentionPolicy(), warnings
    if keep.hourly > 0:
        warnings.append(
            f"keep_hourly {keep.hourly} has no Comet equivalent (Comet keeps at most one "
            "snapshot per day by rule); left out"
        )
    ranges: list[RetentionRange] = []
    if keep.last > 0:
        ranges.append(RetentionRange(RangeType.MOST_RECENT_JOBS, jobs=keep.last))
    if keep.within:
        within = _within_range(keep.within, warnings)
        if within is not None:
            ranges.append(within)
    if keep.daily > 0:
        ranges.append(RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_DAY, jobs=keep.daily))
    if keep.weekly > 0:
        ranges.append(RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_WEEK, jobs=keep.weekly))
    months = max(keep.monthly, 0)
    if keep.yearly > 0:
        warnings.append(
            f"keep_yearly {keep.yearly} became one snapshot per month for the last "
            f"{keep.yearly * 12} months (Comet has no yearly rule)"
        )
        months = max(months, keep.yearly * 12)
    if months > 0:
        ranges.append(RetentionRange(RangeType.LAST_BACKUPS_ONE_PER_MONTH, jobs=months))
    if not ranges:
        return RetentionPolicy(), warnings
    return RetentionPolicy(RetentionMode.DELETE_EXCEPT, tuple(ranges)), warnings


def _within_range(text: str, warnings: list[str]) -> RetentionRange | None:
    """``keep_within`` as range 902. Units: y, m (months), w, d, and H/h (hours), M
    (minutes), S/s (seconds), which are rounded up to whole days."""
    compact = text.replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        warnings.append(f"keep_within {text!r} is not a duration Comet understands; left out")
        return None
    days = weeks = months = 0
    sub_day_seconds = 0
    for number, unit in parts:
        n = int(number)
        if unit == "y":
            months += 12 * n
        elif unit == "m":
            months += n
        elif unit == "w":
            weeks += n
        elif unit == "d":
            days += n
        elif unit in ("H", "h"):
            sub_day_seconds += 3600 * n
        elif unit == "M":
            sub_day_seconds += 60 * n
        elif unit in ("S", "s"):
            sub_day_seconds += n
        else:
            warnings.append(f"keep_within {text!r}: unknown unit {unit!r}; left out")
            return None
    if sub_day_seconds:
        extra = -(-sub_day_seconds // 86400)
        days += extra
        warnings.append(
            f"keep_within {text!r}: Comet counts whole days; rounded up to {extra} more "
            f"day{'s' if extra != 1 else ''}"
        )
    if not (days or weeks or months):
        return None
    return RetentionRange(RangeType.JOBS_SINCE, days=days, weeks=weeks, months=months)
