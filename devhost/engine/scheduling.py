"""What an episode's new decisions become, as the extension records them.

Each decision gets its history event (TaskScheduled, TimerCreated,
SubOrchestrationInstanceCreated); an activity becomes a work item, a timer a message
visible at its fire time, a sub-orchestration the start message of its instance (its
execution id derived from the parent's and the task id, so an episode run again after a
crash sends the same start, which is then dropped as already applied). No I/O: the
episode commits the events, work items and timers, and sends the starts.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devhost.engine import events as ev
from devhost.engine.instance import CachedInstance
from devhost.engine.messages import next_sequence, start_message
from devhost.engine.replay import (
    CreateTimer,
    Decision,
    ScheduleActivity,
    StartSubOrchestration,
)
from devhost.engine.rows import TIMER_PREFIX, WORK_PREFIX, StoredMessage, WorkItem


@dataclass
class Scheduled:
    events: list[dict[str, Any]] = field(default_factory=list)
    work: list[WorkItem] = field(default_factory=list)
    timers: list[StoredMessage] = field(default_factory=list)
    sub_starts: list[StoredMessage] = field(default_factory=list)


def schedule_decisions(instance: CachedInstance, decisions: list[Decision],
                       now: datetime) -> Scheduled:
    """The history events of `decisions`, in order, and what they need stored or sent."""
    scheduled = Scheduled()
    for decision in decisions:
        if isinstance(decision, ScheduleActivity):
            scheduled.events.append(ev.new_event(ev.TASK_SCHEDULED, now, decision.task_id,
                                                 Name=decision.name, Version="",
                                                 Input=decision.input))
            scheduled.work.append(WorkItem(
                instance_id=instance.instance_id,
                key=f"{WORK_PREFIX}{instance.execution_id}-{decision.task_id:08d}",
                execution_id=instance.execution_id, task_id=decision.task_id,
                name=decision.name, input=decision.input,
            ))
        elif isinstance(decision, CreateTimer):
            fire_at = ev.format_timestamp(decision.fire_at)
            scheduled.events.append(ev.new_event(ev.TIMER_CREATED, now, decision.task_id,
                                                 FireAt=fire_at))
            scheduled.timers.append(StoredMessage(
                instance_id=instance.instance_id,
                key=f"{TIMER_PREFIX}{instance.execution_id}-{decision.task_id:08d}",
                event=ev.new_event(ev.TIMER_FIRED, decision.fire_at, TimerId=decision.task_id,
                                   FireAt=fire_at),
                execution_id=instance.execution_id, visible_at=decision.fire_at,
                sequence=next_sequence(),
            ))
        elif isinstance(decision, StartSubOrchestration):
            sub_input = None if decision.input is None else json.dumps(decision.input)
            scheduled.events.append(ev.new_event(
                ev.SUB_ORCHESTRATION_CREATED, now, decision.task_id, Name=decision.name,
                Version="", InstanceId=decision.instance_id, Input=sub_input))
            scheduled.sub_starts.append(start_message(
                decision.instance_id, decision.name, sub_input,
                execution_id=uuid.uuid5(
                    uuid.NAMESPACE_URL, f"{instance.execution_id}/{decision.task_id}"
                ).hex,
                parent={
                    "Name": instance.status["Name"],
                    "OrchestrationInstance": {"InstanceId": instance.instance_id,
                                              "ExecutionId": instance.execution_id},
                    "TaskScheduleId": decision.task_id,
                },
            ))
    return scheduled
