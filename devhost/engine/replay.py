"""Turn the SDK's answer for one episode into new scheduling decisions, as the extension does.

The Durable extension does not trust the out-of-proc SDK with task ids: it replays the
SDK's `actions` through its own Durable Task Framework context (OutOfProcOrchestrationShim:
for each action in order, call the matching API and await it), so ids come from DTFx's
counter, retries are DTFx's RetryInterceptor (an attempt, then a timer, then the next
attempt), `WhenAll`/`WhenAny` are .NET's `Task.WhenAll`/`Task.WhenAny`, and external
events go through the extension's per-name waiter stack and buffer queue. This module is a
small deterministic copy of that machinery (the tasks themselves are in `task_tree`): it
walks the same history events in the same order, so the ids it assigns are the ones the SDK
expects in `TaskScheduledId`/`TimerId`.

Pure: no I/O, no clock (the caller passes history with timestamps).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devhost.engine.durable_http import HTTP_ACTIVITY
from devhost.engine.events import (
    EVENT_RAISED,
    EXECUTION_STARTED,
    ORCHESTRATOR_STARTED,
    SUB_ORCHESTRATION_COMPLETED,
    SUB_ORCHESTRATION_CREATED,
    SUB_ORCHESTRATION_FAILED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TIMER_CREATED,
    TIMER_FIRED,
    parse_timestamp,
)
from devhost.engine.task_tree import (
    Leaf,
    OrchestrationRuleBroken,
    RetryInterceptor,
    RetryPolicy,
    TaskNode,
    WhenAll,
    WhenAny,
)

CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CALL_SUB_ORCHESTRATOR = 2
CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
CONTINUE_AS_NEW = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
SCHEDULED_SIGNAL_ENTITY = 10
WHEN_ANY = 11
WHEN_ALL = 12

UNSUPPORTED_ACTIONS = {
    CALL_ENTITY: "durable entities (call_entity)",
    SIGNAL_ENTITY: "durable entities (signal_entity)",
    SCHEDULED_SIGNAL_ENTITY: "durable entities (signal_entity)",
}


@dataclass
class ScheduleActivity:
    task_id: int
    name: str
    input: str | None


@dataclass
class CreateTimer:
    task_id: int
    fire_at: datetime


@dataclass
class StartSubOrchestration:
    task_id: int
    name: str
    instance_id: str
    input: str | None


Decision = ScheduleActivity | CreateTimer | StartSubOrchestration


@dataclass
class ReplayResult:
    """What the extension would do after this episode."""

    new_decisions: list[Decision]
    finished_walk: bool  # every action was reached and awaited to completion
    continue_as_new_input: str | None = None
    continues_as_new: bool = False
    unconsumed_events: list[dict[str, Any]] = field(default_factory=list)


class _Replayer:
    def __init__(
        self, *, instance_id: str, execution_id: str, parent_instance_id: str | None,
        actions: list[dict[str, Any]],
    ) -> None:
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.parent_instance_id = parent_instance_id
        self.actions = actions
        self.next_id = 0
        self.now: datetime | None = None
        self.open_tasks: dict[int, Leaf] = {}
        self.pending: dict[int, tuple[Decision, int]] = {}  # id -> (decision, history type)
        self.waiters: dict[str, list[Leaf]] = {}
        self.buffered: dict[str, deque[dict[str, Any]]] = {}
        self.walk_index = 0
        self.awaiting: TaskNode | None = None
        self.walk_started = False
        self.continue_as_new: str | None = None
        self.continues_as_new = False

    # -- building tasks from actions (InvokeAPIFromAction) --

    def _take_id(self) -> int:
        task_id = self.next_id
        self.next_id += 1
        return task_id

    def new_activity(self, name: str, input_: Any) -> Leaf:
        leaf = Leaf(self._take_id())
        self.open_tasks[leaf.task_id] = leaf  # type: ignore[index]
        self.pending[leaf.task_id] = (  # type: ignore[index]
            ScheduleActivity(leaf.task_id, name, input_), TASK_SCHEDULED  # type: ignore[arg-type]
        )
        return leaf

    def new_timer(self, fire_at: datetime) -> Leaf:
        leaf = Leaf(self._take_id())
        self.open_tasks[leaf.task_id] = leaf  # type: ignore[index]
        self.pending[leaf.task_id] = (CreateTimer(leaf.task_id, fire_at), TIMER_CREATED)  # type: ignore[arg-type,index]
        return leaf

    def new_sub_orchestration(self, name: str, instance_id: str | None, input_: Any) -> Leaf:
        if instance_id and (
            instance_id.lower() == self.instance_id.lower()
            or (self.parent_instance_id and instance_id.lower() == self.parent_instance_id.lower())
        ):
            raise OrchestrationRuleBroken(
                "The instance ID of a sub-orchestration must be different than the instance "
                "ID of a parent orchestration."
            )
        if instance_id and instance_id.startswith("@"):
            raise OrchestrationRuleBroken("Orchestration instance ids must not start with @")
        leaf = Leaf(self._take_id())
        actual_id = instance_id or f"{self.execution_id}:{leaf.task_id}"
        self.open_tasks[leaf.task_id] = leaf  # type: ignore[index]
        self.pending[leaf.task_id] = (  # type: ignore[index]
            StartSubOrchestration(leaf.task_id, name, actual_id, input_),  # type: ignore[arg-type]
            SUB_ORCHESTRATION_CREATED,
        )
        return leaf

    def wait_for_event(self, name: str) -> Leaf:
        leaf = Leaf(None)
        self.waiters.setdefault(name, []).append(leaf)
        queue = self.buffered.get(name)
        if queue:
            queue.popleft()
            if not queue:
                del self.buffered[name]
            self.raise_event(name, None)
        return leaf

    def raise_event(self, name: str, event: dict[str, Any] | None) -> None:
        stack = self.waiters.get(name)
        if stack:
            leaf = stack.pop()  # the extension keeps waiters as a stack: newest first
            if not stack:
                del self.waiters[name]
            leaf.finish(False)
        elif event is not None:
            self.buffered.setdefault(name, deque()).append(event)

    def build(self, action: dict[str, Any]) -> TaskNode:
        action_type = action.get("actionType")
        if action_type in UNSUPPORTED_ACTIONS:
            raise OrchestrationRuleBroken(
                f"{UNSUPPORTED_ACTIONS[action_type]} are not supported by the devhost engine"
            )
        if action_type == CALL_ACTIVITY:
            return self.new_activity(action["functionName"], action.get("input"))
        if action_type == CALL_HTTP:
            # The extension's CallHttpAsync: one call of its built-in HTTP activity.
            return self.new_activity(HTTP_ACTIVITY, json.dumps(action.get("httpRequest") or {}))
        if action_type == CALL_ACTIVITY_WITH_RETRY:
            policy = RetryPolicy.from_action(action.get("retryOptions") or {})
            return RetryInterceptor(
                self, lambda: self.new_activity(action["functionName"], action.get("input")), policy
            )
        if action_type == CALL_SUB_ORCHESTRATOR:
            return self.new_sub_orchestration(
                action["functionName"], action.get("instanceId"), action.get("input")
            )
        if action_type == CALL_SUB_ORCHESTRATOR_WITH_RETRY:
            policy = RetryPolicy.from_action(action.get("retryOptions") or {})
            return RetryInterceptor(
                self,
                lambda: self.new_sub_orchestration(
                    action["functionName"], action.get("instanceId"), action.get("input")
                ),
                policy,
            )
        if action_type == CONTINUE_AS_NEW:
            self.continues_as_new = True
            self.continue_as_new = action.get("input")
            done = Leaf(None)
            done.finish(False)
            return done
        if action_type == CREATE_TIMER:
            leaf = self.new_timer(parse_timestamp(action["fireAt"]))
            if action.get("isCanceled"):
                # DTFx cancels the task but the timer itself stays scheduled.
                self.open_tasks.pop(leaf.task_id, None)  # type: ignore[arg-type]
                leaf.finish(True)
            return leaf
        if action_type == WAIT_FOR_EXTERNAL_EVENT:
            return self.wait_for_event(action["externalEventName"])
        if action_type == WHEN_ALL:
            return WhenAll([self.build(child) for child in action.get("compoundActions", [])])
        if action_type == WHEN_ANY:
            return WhenAny([self.build(child) for child in action.get("compoundActions", [])])
        raise OrchestrationRuleBroken(f"unknown action type {action_type!r} from the SDK")

    # -- the shim's loop: each action in turn, awaited --

    def advance(self, _: TaskNode | None = None) -> None:
        self.awaiting = None
        while self.walk_index < len(self.actions):
            node = self.build(self.actions[self.walk_index])
            self.walk_index += 1
            if not node.done:
                self.awaiting = node
                node.on_done = self.advance
                return

    # -- history events (TaskOrchestrationExecutor) --

    def apply(self, event: dict[str, Any]) -> None:
        event_type = event["EventType"]
        if event_type == ORCHESTRATOR_STARTED:
            stamp = parse_timestamp(event["Timestamp"])
            if self.now is None or stamp > self.now:
                self.now = stamp
        elif event_type == EXECUTION_STARTED:
            if self.now is None:
                self.now = parse_timestamp(event["Timestamp"])
            self.walk_started = True
            self.advance()
        elif event_type in (TASK_SCHEDULED, TIMER_CREATED, SUB_ORCHESTRATION_CREATED):
            task_id = event["EventId"]
            expected = self.pending.pop(task_id, None)
            if expected is None or expected[1] != event_type:
                raise OrchestrationRuleBroken(
                    "Non-Deterministic workflow detected: the history has a scheduling event "
                    f"with id {task_id} that the orchestrator did not produce in this replay"
                )
        elif event_type in (TASK_COMPLETED, TASK_FAILED, SUB_ORCHESTRATION_COMPLETED,
                            SUB_ORCHESTRATION_FAILED):
            leaf = self.open_tasks.pop(event["TaskScheduledId"], None)
            if leaf is not None:
                leaf.finish(event_type in (TASK_FAILED, SUB_ORCHESTRATION_FAILED))
        elif event_type == TIMER_FIRED:
            leaf = self.open_tasks.pop(event["TimerId"], None)
            if leaf is not None:
                leaf.finish(False)
        elif event_type == EVENT_RAISED:
            self.raise_event(event.get("Name") or "", event)


def replay_actions(
    *,
    history: list[dict[str, Any]],
    actions: list[list[dict[str, Any]]],
    schema_version: int,
    instance_id: str,
    execution_id: str,
    parent_instance_id: str | None,
) -> ReplayResult:
    """Replay `actions` (the SDK's answer) over `history` the way the extension would."""
    if schema_version >= 1:
        if len(actions) > 1:
            raise OrchestrationRuleBroken(
                f"With OOProc schema {schema_version}, expected actions array to be of length "
                f"1 in outer layer but got size: {len(actions)}"
            )
        flat = actions[0] if actions else []
    else:
        # Schema V1: each yield's actions form one set, awaited with WhenAny.
        flat = [
            {"actionType": WHEN_ANY, "compoundActions": action_set}
            for action_set in actions
            if action_set
        ]
    replayer = _Replayer(
        instance_id=instance_id, execution_id=execution_id,
        parent_instance_id=parent_instance_id, actions=flat,
    )
    for event in history:
        replayer.apply(event)
    finished = replayer.walk_started and replayer.awaiting is None and (
        replayer.walk_index >= len(flat)
    )
    return ReplayResult(
        new_decisions=[decision for _, (decision, _kind) in sorted(replayer.pending.items())],
        finished_walk=finished,
        continue_as_new_input=replayer.continue_as_new,
        continues_as_new=replayer.continues_as_new,
        unconsumed_events=[event for queue in replayer.buffered.values() for event in queue],
    )
