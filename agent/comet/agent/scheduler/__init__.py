"""Schedule evaluation for the agent: when each schedule's runs are planned, and which are
due now. Synchronous and clock-free: time is always passed in, nothing sleeps. Must not
import grpc, asyncio or Qt; protobuf ``Schedule`` messages are converted to
``ScheduleSpec`` by the rpc layer, never here.
"""

from comet.agent.scheduler.frequency import Frequency
from comet.agent.scheduler.planner import next_run, previous_run
from comet.agent.scheduler.retry import retry_times
from comet.agent.scheduler.scheduler import DEFAULT_GRACE, Scheduler
from comet.agent.scheduler.spec import MAX_RANDOM_DELAY_SECONDS, ScheduleError, ScheduleSpec
from comet.agent.scheduler.trigger import Trigger, TriggerKind

__all__ = [
    "DEFAULT_GRACE",
    "MAX_RANDOM_DELAY_SECONDS",
    "Frequency",
    "ScheduleError",
    "ScheduleSpec",
    "Scheduler",
    "Trigger",
    "TriggerKind",
    "next_run",
    "previous_run",
    "retry_times",
]
