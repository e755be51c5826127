"""``Scheduler``: which schedules are due, as a pure state machine the agent drives.

The agent calls ``due(now)`` whenever it wakes, acts on each trigger, reports it back
with ``mark_handled``, persists ``last_run``, and sleeps until ``next_wakeup(now)``. The
scheduler never reads a clock, sleeps or starts jobs.

Per schedule it keeps one instant, ``last_run``: every planned run at or before it has
been handled. A run planned after it and at or before ``now`` is due. However late
``due`` is called, a schedule yields at most one run per call:

* While the agent has been running (neither ``booting`` nor ``resumed``, and not the
  first check of this scheduler), the latest due run is a RUN, however late; earlier
  runs that came due at the same time are folded into it.
* After downtime (``booting``: the process started; ``resumed``: the machine woke from
  sleep; or the first check), a run less than ``grace`` late still runs. Runs older than
  that were missed: with ``run_at_boot_if_missed`` they become one catch-up RUN,
  otherwise one MISSED trigger covering all of them, so the agent records a Missed job.
* With ``booting``, a ``run_at_boot`` schedule triggers a BOOT run unless it already
  runs anyway in the same call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from comet.agent.scheduler.planner import next_run, previous_run
from comet.agent.scheduler.retry import retry_times
from comet.agent.scheduler.spec import ScheduleError, ScheduleSpec
from comet.agent.scheduler.trigger import Trigger, TriggerKind
from comet.agent.scheduler.wallclock import to_utc

DEFAULT_GRACE = timedelta(minutes=10)
_TICK = timedelta(microseconds=1)


class Scheduler:
    """Due-run bookkeeping for one device's schedules (see the module docstring).

    ``last_run`` maps schedule ids to the persisted instant up to which runs were handled.
    A schedule without one starts from the first ``due`` call that sees it, so it never
    fires for the past. Retries planned with ``plan_retries`` live in memory only.
    """

    def __init__(
        self,
        specs: Iterable[ScheduleSpec],
        tz: ZoneInfo,
        last_run: Mapping[str, datetime] | None = None,
        *,
        grace: timedelta = DEFAULT_GRACE,
    ) -> None:
        self._tz = tz
        self._grace = grace
        self._specs = _by_id(specs)
        saved = {sid: to_utc(at) for sid, at in (last_run or {}).items()}
        self._handled = {sid: at for sid, at in saved.items() if sid in self._specs}
        # Saved instants of schedules not known yet (the agent creates its scheduler
        # before the profile's schedules are loaded): used when ``update`` brings them.
        self._restored = {sid: at for sid, at in saved.items() if sid not in self._specs}
        self._retries: dict[str, list[datetime]] = {}
        self._last_check: datetime | None = None

    @property
    def specs(self) -> tuple[ScheduleSpec, ...]:
        return tuple(self._specs.values())

    @property
    def last_run(self) -> dict[str, datetime]:
        """What to persist: per schedule, the instant up to which runs were handled
        (including the start point of schedules that have not run yet, and the saved
        instants of schedules not loaded yet)."""
        return {**self._restored, **self._handled}

    def due(self, now: datetime, *, booting: bool = False, resumed: bool = False) -> list[Trigger]:
        """The triggers to act on at ``now``, ordered by planned time. Calling it again
        before ``mark_handled`` returns the same runs again (and a first check, booting or
        resumed call fixes the start point of schedules seen for the first time).

        ``booting``: the agent process just started. ``resumed``: the machine just woke
        from sleep (the agent sees wall time jump ahead of its monotonic clock)."""
        now = to_utc(now)
        down = booting or resumed or self._last_check is None
        self._last_check = now
        triggers: list[Trigger] = []
        for spec in self._specs.values():
            if not spec.enabled:
                continue
            handled = self._handled.setdefault(spec.schedule_id, now)
            found = self._scheduled(spec, handled, now, down=down)
            runs = any(t.kind is TriggerKind.RUN for t in found)
            if booting and spec.run_at_boot and not runs:
                found.append(_trigger(spec, TriggerKind.BOOT, now, now))
                runs = True
            retries = [at for at in self._retries.get(spec.schedule_id, []) if at <= now]
            if retries and not runs:
                found.append(_trigger(spec, TriggerKind.RETRY, retries[-1], retries[0]))
            triggers.extend(found)
        triggers.sort(key=lambda t: (t.planned, t.schedule_id))
        return triggers

    def mark_handled(self, schedule_id: str, planned: datetime) -> None:
        """Record that the trigger planned at ``planned`` was acted on. For a RETRY this
        consumes the retries up to it; otherwise runs up to ``planned`` are done (and so
        are retries planned before it). Never moves ``last_run`` backwards."""
        planned = to_utc(planned)
        pending = self._retries.get(schedule_id, [])
        is_retry = planned in pending
        self._retries[schedule_id] = [at for at in pending if at > planned]
        if not self._retries[schedule_id]:
            del self._retries[schedule_id]
        if is_retry or schedule_id not in self._specs:
            return
        previous = self._handled.get(schedule_id)
        if previous is None or planned > previous:
            self._handled[schedule_id] = planned

    def next_wakeup(self, now: datetime) -> datetime | None:
        """The earliest planned run or retry not yet handled, so the agent can sleep until
        then; None if nothing is planned. A time at or before ``now`` means ``due`` has
        work now."""
        now = to_utc(now)
        times: list[datetime] = []
        for spec in self._specs.values():
            if not spec.enabled:
                continue
            upcoming = next_run(spec, self._handled.get(spec.schedule_id, now), self._tz)
            if upcoming is not None:
                times.append(upcoming)
            times.extend(self._retries.get(spec.schedule_id, [])[:1])
        return min(times, default=None)

    def update(self, specs: Iterable[ScheduleSpec], *, now: datetime | None = None) -> None:
        """Replace the schedules after a profile change. A schedule whose timing (and
        enabled flag) is unchanged keeps its ``last_run`` and retries; a new or retimed one
        starts from ``now`` (or from the next ``due`` call if ``now`` is not given), never
        firing for the past; a removed one is forgotten. A schedule seen for the first
        time since a restart continues from its saved ``last_run``, so runs that fell
        while the agent was down are run late or recorded as missed."""
        fresh = _by_id(specs)
        start = to_utc(now) if now is not None else None
        for sid in list(self._handled):
            old, new = self._specs.get(sid), fresh.get(sid)
            if old is None or new is None or old.timing() != new.timing():
                del self._handled[sid]
                self._retries.pop(sid, None)
        for sid in list(self._retries):
            if sid not in fresh:
                del self._retries[sid]
        for sid in fresh:
            if sid not in self._specs and sid in self._restored:
                self._handled[sid] = self._restored.pop(sid)
        if start is not None:
            for sid in fresh:
                self._handled.setdefault(sid, start)
        self._specs = fresh

    def plan_retries(self, schedule_id: str, failed_at: datetime) -> list[datetime]:
        """After a scheduled job failed: plan its retries (replacing any pending ones) so
        ``due`` reports them as RETRY triggers. Returns the planned times."""
        spec = self._specs.get(schedule_id)
        if spec is None:
            raise ScheduleError(f"no schedule {schedule_id!r} to retry")
        planned = retry_times(spec, failed_at)
        if planned:
            self._retries[schedule_id] = planned
        else:
            self._retries.pop(schedule_id, None)
        return list(planned)

    def cancel_retries(self, schedule_id: str) -> None:
        """Drop pending retries (a retry succeeded, or the job was cancelled by a person)."""
        self._retries.pop(schedule_id, None)

    def _scheduled(
        self, spec: ScheduleSpec, handled: datetime, now: datetime, *, down: bool
    ) -> list[Trigger]:
        first = next_run(spec, handled, self._tz)
        if first is None or first > now:
            return []
        latest = previous_run(spec, now, self._tz)
        assert latest is not None and latest >= first  # ``first`` itself qualifies
        if not down:
            return [_trigger(spec, TriggerKind.RUN, latest, first)]
        if spec.run_at_boot_if_missed:
            return [_trigger(spec, TriggerKind.RUN, latest, first)]
        if now - latest > self._grace:
            return [_trigger(spec, TriggerKind.MISSED, latest, first)]
        found = []
        if latest > first:
            earlier = previous_run(spec, latest - _TICK, self._tz)
            assert earlier is not None
            found.append(_trigger(spec, TriggerKind.MISSED, earlier, first))
        found.append(_trigger(spec, TriggerKind.RUN, latest, latest))
        return found


def _by_id(specs: Iterable[ScheduleSpec]) -> dict[str, ScheduleSpec]:
    found: dict[str, ScheduleSpec] = {}
    for spec in specs:
        if spec.schedule_id in found:
            raise ScheduleError(f"schedule id {spec.schedule_id!r} appears twice")
        found[spec.schedule_id] = spec
    return found


def _trigger(spec: ScheduleSpec, kind: TriggerKind, planned: datetime, first: datetime) -> Trigger:
    return Trigger(
        schedule_id=spec.schedule_id,
        item_id=spec.item_id,
        vault_id=spec.vault_id,
        planned=planned,
        kind=kind,
        skip_if_running=spec.skip_if_running,
        stop_after_seconds=spec.stop_after_seconds,
        first_planned=first,
    )
