"""Replays an orchestrator through the real azure-functions-durable SDK entry point.

The test plays the Durable backend: it builds the JSON history (OrchestratorStarted,
ExecutionStarted, TaskScheduled/TaskCompleted, TimerCreated/TimerFired) the way the
SDK's own tests do (tests/test_utils/ContextBuilder.py), calls the orchestrator with it,
and answers each scheduled activity with `respond(name, input, now)`. Timers fire at
their due time, so the clock moves exactly as the orchestrator asked.

`raise_before(fire_at)` may name external events `[(name, data)]` that arrive before a
durable timer fires: they go into the history and that timer never fires.

`respond` raising `ActivityFailed` fails every attempt of that call: the history then
holds what the Durable extension writes for an activity with retry options that runs
out of attempts (TaskScheduled, TaskFailed, then a retry timer, per attempt).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ORCHESTRATOR_STARTED, EXECUTION_STARTED, TASK_SCHEDULED, TASK_COMPLETED = 12, 0, 4, 5
TASK_FAILED = 6
TIMER_CREATED, TIMER_FIRED, EVENT_RAISED = 10, 11, 15
CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CREATE_TIMER, WAIT_FOR_EXTERNAL_EVENT = 0, 1, 5, 6


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


@dataclass
class Replay:
    output: Any = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    statuses: list[Any] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def called(self, name: str) -> list[dict[str, Any]]:
        return [request for call, request in self.calls if call == name]

    @property
    def history_bytes(self) -> int:
        return len(json.dumps(self.history))


def replay(
    orchestrator_fn: Callable[[str], str], load_input: dict[str, Any],
    respond: Callable[[str, dict[str, Any], datetime], Any], start: datetime,
    max_episodes: int = 500,
    raise_before: Callable[[datetime], list[tuple[str, Any]]] | None = None,
) -> Replay:
    now = start
    result = Replay()
    history = result.history

    def event(event_type: int, **fields: Any) -> dict[str, Any]:
        return {"EventType": event_type, "EventId": fields.pop("EventId", -1),
                "IsPlayed": False, "Timestamp": _iso(now), **fields}

    history += [event(ORCHESTRATOR_STARTED),
                event(EXECUTION_STARTED, Name="bulk_load", Version="",
                      Input=json.dumps(load_input))]
    next_id = 0
    for _ in range(max_episodes):
        context = {"history": history, "instanceId": load_input["load_id"],
                   "isReplaying": False, "parentInstanceId": None,
                   "input": json.dumps(load_input), "upperSchemaVersion": 0}
        state = json.loads(orchestrator_fn(json.dumps(context)))
        if state.get("error"):
            raise AssertionError(f"the orchestrator failed: {state['error']}")
        result.statuses.append(state.get("customStatus"))
        if state["isDone"]:
            result.output = state["output"]
            return result
        for past in history:
            past["IsPlayed"] = True
        actions = state["actions"][-1]
        scheduled = [action for action in actions
                     if action["actionType"] != WAIT_FOR_EXTERNAL_EVENT]
        if len(scheduled) > 1:
            # Several tasks at once (an activity raced by a poll timer): as the backend
            # records them, every one is scheduled first, then the activities complete,
            # then the timers fire.
            next_id, now = _several_at_once(scheduled, history, event, next_id, now, respond,
                                            result, raise_before)
            continue
        for action in actions:
            if action["actionType"] in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
                name = action["functionName"]
                request = json.loads(action["input"])
                result.calls.append((name, request))
                try:
                    answer = respond(name, request, now)
                except ActivityFailed as failure:
                    attempts = (action.get("retryOptions") or {}).get("maxNumberOfAttempts", 1)
                    result.failures.append((name, attempts))
                    for _attempt in range(attempts):
                        history += [event(TASK_SCHEDULED, EventId=next_id, Name=name),
                                    event(ORCHESTRATOR_STARTED),
                                    event(TASK_FAILED, TaskScheduledId=next_id,
                                          Reason=f"Activity function '{name}' failed: "
                                                 f"ActivityFailed: {failure}",
                                          Details=_failure_details(failure))]
                        next_id += 1
                        if action["actionType"] == CALL_ACTIVITY_WITH_RETRY:
                            fire_at = _iso(now)
                            history += [event(TIMER_CREATED, EventId=next_id, FireAt=fire_at),
                                        event(ORCHESTRATOR_STARTED),
                                        event(TIMER_FIRED, TimerId=next_id, FireAt=fire_at)]
                            next_id += 1
                    continue
                history += [event(TASK_SCHEDULED, EventId=next_id, Name=name),
                            event(ORCHESTRATOR_STARTED),
                            event(TASK_COMPLETED, TaskScheduledId=next_id,
                                  Result=json.dumps(answer))]
            elif action["actionType"] == CREATE_TIMER:
                fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
                result.timers.append(fire_at)
                history.append(event(TIMER_CREATED, EventId=next_id,
                                     FireAt=action["fireAt"]))
                arriving = raise_before(fire_at) if raise_before else []
                if arriving:
                    history.append(event(ORCHESTRATOR_STARTED))
                    history += [event(EVENT_RAISED, Name=name, Input=json.dumps(data))
                                for name, data in arriving]
                else:
                    now = fire_at
                    history += [event(ORCHESTRATOR_STARTED),
                                event(TIMER_FIRED, TimerId=next_id, FireAt=action["fireAt"])]
            elif action["actionType"] == WAIT_FOR_EXTERNAL_EVENT:
                continue  # an event wait has no sequence number: it is matched by name
            else:
                raise AssertionError(f"unexpected action {action}")
            next_id += 1
    raise AssertionError(f"the orchestration did not end in {max_episodes} episodes")


def _several_at_once(
    actions: list[dict[str, Any]], history: list[dict[str, Any]],
    event: Callable[..., dict[str, Any]], next_id: int, now: datetime,
    respond: Callable[[str, dict[str, Any], datetime], Any], result: Replay,
    raise_before: Callable[[datetime], list[tuple[str, Any]]] | None,
) -> tuple[int, datetime]:
    completions: list[tuple[int, int, Any]] = []
    for action in actions:
        if action["actionType"] in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
            name = action["functionName"]
            request = json.loads(action["input"])
            result.calls.append((name, request))
            history.append(event(TASK_SCHEDULED, EventId=next_id, Name=name))
            try:
                completions.append((0, next_id, json.dumps(respond(name, request, now))))
            except ActivityFailed as failure:  # once: an activity raced by a timer
                result.failures.append((name, 1))
                completions.append((0, next_id, failure))
        elif action["actionType"] == CREATE_TIMER:
            fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
            result.timers.append(fire_at)
            history.append(event(TIMER_CREATED, EventId=next_id, FireAt=action["fireAt"]))
            completions.append((1, next_id, action["fireAt"]))
        else:
            raise AssertionError(f"unexpected action {action}")
        next_id += 1
    for kind, event_id, value in sorted(completions, key=lambda done: done[:2]):
        if isinstance(value, ActivityFailed):
            history += [event(ORCHESTRATOR_STARTED),
                        event(TASK_FAILED, TaskScheduledId=event_id,
                              Reason=f"ActivityFailed: {value}",
                              Details=_failure_details(value))]
        elif kind == 0:
            history += [event(ORCHESTRATOR_STARTED),
                        event(TASK_COMPLETED, TaskScheduledId=event_id, Result=value)]
        else:
            fire_at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            arriving = raise_before(fire_at) if raise_before else []
            history.append(event(ORCHESTRATOR_STARTED))
            if arriving:  # the timer never fires
                history += [event(EVENT_RAISED, Name=name, Input=json.dumps(data))
                            for name, data in arriving]
                continue
            now = fire_at
            history.append(event(TIMER_FIRED, TimerId=event_id, FireAt=value))
    return next_id, now
