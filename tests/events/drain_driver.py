"""Replays the event drain orchestrator through the real azure-functions-durable entry point.

The test plays the Durable backend for one execution (one generation): it builds the JSON
history the extension writes (TaskScheduled/TaskCompleted for activities,
SubOrchestrationInstanceCreated/Completed for the batch instances), calls the orchestrator
with it, answers each activity with `respond(name, request)` and each sub-orchestration
with the batch job's result, until the orchestration completes or continues as new.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ORCHESTRATOR_STARTED, EXECUTION_STARTED, TASK_SCHEDULED, TASK_COMPLETED = 12, 0, 4, 5
SUB_CREATED, SUB_COMPLETED = 7, 8
CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR, CONTINUE_AS_NEW = 0, 1, 2, 4
SUB_ORCHESTRATOR = "sub_orchestrator"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class DrainReplay:
    output: Any = None
    continued_with: dict[str, Any] | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    episodes: int = 0

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def replay_drain(orchestrator_fn: Callable[[str], str], run_input: dict[str, Any],
                 respond: Callable[[str, dict[str, Any]], Any], now: datetime,
                 max_episodes: int = 200) -> DrainReplay:
    result = DrainReplay()
    history: list[dict[str, Any]] = []

    def event(event_type: int, **fields: Any) -> dict[str, Any]:
        return {"EventType": event_type, "EventId": fields.pop("EventId", -1),
                "IsPlayed": False, "Timestamp": _iso(now), **fields}

    history += [event(ORCHESTRATOR_STARTED),
                event(EXECUTION_STARTED, Name="event_drain", Version="",
                      Input=json.dumps(run_input))]
    next_id = 0
    for _ in range(max_episodes):
        context = {"history": history, "instanceId": "event-drain", "isReplaying": False,
                   "parentInstanceId": None, "input": json.dumps(run_input),
                   "upperSchemaVersion": 0}
        state = json.loads(orchestrator_fn(json.dumps(context)))
        result.episodes += 1
        if state.get("error"):
            raise AssertionError(f"the orchestrator failed: {state['error']}")
        actions = state["actions"][-1] if state["actions"] else []
        for action in actions:
            if action["actionType"] == CONTINUE_AS_NEW:
                result.continued_with = json.loads(action["input"])
                return result
        if state["isDone"]:
            result.output = state["output"]
            return result
        for past in history:
            past["IsPlayed"] = True
        for action in actions:
            kind = action["actionType"]
            if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
                name, request = action["functionName"], json.loads(action["input"])
                result.calls.append((name, request))
                history += [event(TASK_SCHEDULED, EventId=next_id, Name=name),
                            event(ORCHESTRATOR_STARTED),
                            event(TASK_COMPLETED, TaskScheduledId=next_id,
                                  Result=json.dumps(respond(name, request)))]
            elif kind == CALL_SUB_ORCHESTRATOR:
                request = json.loads(action["input"])
                result.calls.append((SUB_ORCHESTRATOR, request))
                history += [event(SUB_CREATED, EventId=next_id, Name=action["functionName"],
                                  InstanceId=action["instanceId"]),
                            event(ORCHESTRATOR_STARTED),
                            event(SUB_COMPLETED, TaskScheduledId=next_id,
                                  Result=json.dumps(respond(SUB_ORCHESTRATOR, request)))]
            else:
                raise AssertionError(f"unexpected action {action}")
            next_id += 1
    raise AssertionError(f"the drain did not end in {max_episodes} episodes")
