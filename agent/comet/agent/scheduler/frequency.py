"""How often a schedule runs: Comet's published frequency codes."""

from __future__ import annotations

import enum


class Frequency(enum.IntEnum):
    """Comet's schedule frequency codes (``ScheduleFrequency`` on the wire)."""

    ONCE = 8010
    DAILY = 8011
    HOURLY = 8012
    WEEKLY = 8013
    MONTHLY = 8014
    PERIODIC = 8015
