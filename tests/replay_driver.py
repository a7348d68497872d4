"""Replays an orchestrator through the real azure-functions-durable SDK entry point.

The test plays the Durable backend: it builds the JSON history (OrchestratorStarted,
ExecutionStarted, TaskScheduled/TaskCompleted, TimerCreated/TimerFired,
SubOrchestrationInstanceCreated/Completed) the way the SDK's own tests do
(tests/test_utils/ContextBuilder.py), calls the orchestrator with it, and answers each
scheduled activity with `respond(name, input, now)` and each sub-orchestration with
`respond(SUB_ORCHESTRATOR, input, now)`. Timers fire at their due time, so the clock
moves exactly as the orchestrator asked. The replay ends when the orchestration completes
(`output`) or continues as new (`continued_with`): one generation.

`raise_before(fire_at)` may name external events `[(name, data)]` that arrive before a
durable timer fires: they go into the history and that timer never fires.

`respond` raising `ActivityFailed` fails every attempt of that call: the history then
holds what the Durable extension writes for an activity with retry options that runs
out of attempts (TaskScheduled, TaskFailed, then a retry timer, per attempt).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

ORCHESTRATOR_STARTED, EXECUTION_STARTED, TASK_SCHEDULED, TASK_COMPLETED = 12, 0, 4, 5
TASK_FAILED, SUB_CREATED, SUB_COMPLETED = 6, 7, 8
TIMER_CREATED, TIMER_FIRED, EVENT_RAISED = 10, 11, 15
CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR = 0, 1, 2
CONTINUE_AS_NEW, CREATE_TIMER, WAIT_FOR_EXTERNAL_EVENT = 4, 5, 6
SUB_ORCHESTRATOR = "sub_orchestrator"

Respond = Callable[[str, dict[str, Any], datetime], Any]
RaiseBefore = Callable[[datetime], list[tuple[str, Any]]]


@contextmanager
def orchestrator_function(module: str, name: str) -> Iterator[Callable[..., Any]]:
    """The user function of orchestrator `name` in `module`, imported with a storage
    setting for the import only: hosts started by later tests must not inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        if "AzureWebJobsStorage" not in os.environ:
            patch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
        yield getattr(importlib.import_module(module), name).build().get_user_function()


class ActivityFailed(Exception):
    """Raised by `respond`: the activity fails on every attempt with this message."""


def _failure_details(failure: Exception) -> str:
    """What the Durable extension stores as a TaskFailed's details: the serialized exception,
    stack trace included."""
    return json.dumps({"ClassName": "System.Exception", "Message": f"ActivityFailed: {failure}",
                       "StackTraceString": "Traceback (most recent call last):\n  File "
                       "\"activities/bulk_load.py\", line 1, in activity\n" * 20})


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _fire_time(fire_at: str) -> datetime:
    return datetime.fromisoformat(fire_at.replace("Z", "+00:00"))


@dataclass
class Replay:
    output: Any = None
    continued_with: dict[str, Any] | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    statuses: list[Any] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    episodes: int = 0

    def called(self, name: str) -> list[dict[str, Any]]:
        return [request for call, request in self.calls if call == name]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    @property
    def history_bytes(self) -> int:
        return len(json.dumps(self.history))


def replay(
    orchestrator_fn: Callable[[str], str], run_input: dict[str, Any], respond: Respond,
    start: datetime, *, orchestration: str, instance_id: str, max_episodes: int = 500,
    raise_before: RaiseBefore | None = None,
) -> Replay:
    """Runs one generation of `orchestration` as instance `instance_id`, from `start`."""
    backend = _Backend(respond, raise_before, start)
    backend.record(backend.event(ORCHESTRATOR_STARTED),
                   backend.event(EXECUTION_STARTED, Name=orchestration, Version="",
                                 Input=json.dumps(run_input)))
    result = backend.result
    for _ in range(max_episodes):
        context = {"history": result.history, "instanceId": instance_id,
                   "isReplaying": False, "parentInstanceId": None,
                   "input": json.dumps(run_input), "upperSchemaVersion": 0}
        state = json.loads(orchestrator_fn(json.dumps(context)))
        result.episodes += 1
        if state.get("error"):
            raise AssertionError(f"the orchestrator failed: {state['error']}")
        result.statuses.append(state.get("customStatus"))
        actions = state["actions"][-1] if state["actions"] else []
        for action in actions:
            if action["actionType"] == CONTINUE_AS_NEW:
                result.continued_with = json.loads(action["input"])
                return result
        if state["isDone"]:
            result.output = state["output"]
            return result
        for past in result.history:
            past["IsPlayed"] = True
        backend.answer(actions)
    raise AssertionError(f"the orchestration did not end in {max_episodes} episodes")


@dataclass
class _Backend:
    """The history one replay writes, and the clock and sequence numbers behind it."""

    respond: Respond
    raise_before: RaiseBefore | None
    now: datetime
    next_id: int = 0
    result: Replay = field(default_factory=Replay)

    def event(self, event_type: int, **fields: Any) -> dict[str, Any]:
        return {"EventType": event_type, "EventId": fields.pop("EventId", -1),
                "IsPlayed": False, "Timestamp": _iso(self.now), **fields}

    def record(self, *events: dict[str, Any]) -> None:
        self.result.history.extend(events)

    def answer(self, actions: list[dict[str, Any]]) -> None:
        """Writes what the backend records for one episode's actions."""
        scheduled = [action for action in actions
                     if action["actionType"] != WAIT_FOR_EXTERNAL_EVENT]
        if len(scheduled) > 1:
            self.several_at_once(scheduled)
            return
        for action in scheduled:
            kind = action["actionType"]
            if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
                self.run_activity(action)
            elif kind == CALL_SUB_ORCHESTRATOR:
                self.run_sub_orchestration(action)
            elif kind == CREATE_TIMER:
                self.run_timer(action)
            else:
                raise AssertionError(f"unexpected action {action}")

    def run_activity(self, action: dict[str, Any]) -> None:
        name, request = action["functionName"], json.loads(action["input"])
        self.result.calls.append((name, request))
        try:
            answer = self.respond(name, request, self.now)
        except ActivityFailed as failure:
            self.fail_every_attempt(action, name, failure)
            return
        self.record(self.event(TASK_SCHEDULED, EventId=self.next_id, Name=name),
                    self.event(ORCHESTRATOR_STARTED),
                    self.event(TASK_COMPLETED, TaskScheduledId=self.next_id,
                               Result=json.dumps(answer)))
        self.next_id += 1

    def fail_every_attempt(self, action: dict[str, Any], name: str,
                           failure: ActivityFailed) -> None:
        attempts = (action.get("retryOptions") or {}).get("maxNumberOfAttempts", 1)
        self.result.failures.append((name, attempts))
        for _attempt in range(attempts):
            self.record(self.event(TASK_SCHEDULED, EventId=self.next_id, Name=name),
                        self.event(ORCHESTRATOR_STARTED),
                        self.event(TASK_FAILED, TaskScheduledId=self.next_id,
                                   Reason=f"Activity function '{name}' failed: "
                                          f"ActivityFailed: {failure}",
                                   Details=_failure_details(failure)))
            self.next_id += 1
            if action["actionType"] == CALL_ACTIVITY_WITH_RETRY:
                fire_at = _iso(self.now)
                self.record(self.event(TIMER_CREATED, EventId=self.next_id, FireAt=fire_at),
                            self.event(ORCHESTRATOR_STARTED),
                            self.event(TIMER_FIRED, TimerId=self.next_id, FireAt=fire_at))
                self.next_id += 1

    def run_sub_orchestration(self, action: dict[str, Any]) -> None:
        request = json.loads(action["input"])
        self.result.calls.append((SUB_ORCHESTRATOR, request))
        self.record(self.event(SUB_CREATED, EventId=self.next_id, Name=action["functionName"],
                               InstanceId=action["instanceId"]),
                    self.event(ORCHESTRATOR_STARTED),
                    self.event(SUB_COMPLETED, TaskScheduledId=self.next_id,
                               Result=json.dumps(self.respond(SUB_ORCHESTRATOR, request,
                                                              self.now))))
        self.next_id += 1

    def run_timer(self, action: dict[str, Any]) -> None:
        fire_at = _fire_time(action["fireAt"])
        self.result.timers.append(fire_at)
        timer_id = self.next_id
        self.next_id += 1
        self.record(self.event(TIMER_CREATED, EventId=timer_id, FireAt=action["fireAt"]))
        arriving = self.raise_before(fire_at) if self.raise_before else []
        if arriving:  # the timer never fires
            self.record(self.event(ORCHESTRATOR_STARTED),
                        *[self.event(EVENT_RAISED, Name=name, Input=json.dumps(data))
                          for name, data in arriving])
            return
        self.now = fire_at
        self.record(self.event(ORCHESTRATOR_STARTED),
                    self.event(TIMER_FIRED, TimerId=timer_id, FireAt=action["fireAt"]))

    def several_at_once(self, actions: list[dict[str, Any]]) -> None:
        """Several tasks at once (an activity raced by a poll timer): as the backend records
        them, every one is scheduled first, then the activities complete, then the timers
        fire."""
        completions: list[tuple[int, int, Any]] = []
        for action in actions:
            if action["actionType"] in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
                name, request = action["functionName"], json.loads(action["input"])
                self.result.calls.append((name, request))
                self.record(self.event(TASK_SCHEDULED, EventId=self.next_id, Name=name))
                try:
                    completions.append((0, self.next_id,
                                        json.dumps(self.respond(name, request, self.now))))
                except ActivityFailed as failure:  # once: an activity raced by a timer
                    self.result.failures.append((name, 1))
                    completions.append((0, self.next_id, failure))
            elif action["actionType"] == CREATE_TIMER:
                self.result.timers.append(_fire_time(action["fireAt"]))
                self.record(self.event(TIMER_CREATED, EventId=self.next_id,
                                       FireAt=action["fireAt"]))
                completions.append((1, self.next_id, action["fireAt"]))
            else:
                raise AssertionError(f"unexpected action {action}")
            self.next_id += 1
        for kind, event_id, value in sorted(completions, key=lambda done: done[:2]):
            if isinstance(value, ActivityFailed):
                self.record(self.event(ORCHESTRATOR_STARTED),
                            self.event(TASK_FAILED, TaskScheduledId=event_id,
                                       Reason=f"ActivityFailed: {value}",
                                       Details=_failure_details(value)))
            elif kind == 0:
                self.record(self.event(ORCHESTRATOR_STARTED),
                            self.event(TASK_COMPLETED, TaskScheduledId=event_id, Result=value))
            else:
                self.fire_raced_timer(event_id, value)

    def fire_raced_timer(self, timer_id: int, fire_at: str) -> None:
        arriving = self.raise_before(_fire_time(fire_at)) if self.raise_before else []
        self.record(self.event(ORCHESTRATOR_STARTED))
        if arriving:  # the timer never fires
            self.record(*[self.event(EVENT_RAISED, Name=name, Input=json.dumps(data))
                          for name, data in arriving])
            return
        self.now = _fire_time(fire_at)
        self.record(self.event(TIMER_FIRED, TimerId=timer_id, FireAt=fire_at))
