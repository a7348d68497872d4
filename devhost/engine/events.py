"""History events in the JSON shape the Durable extension hands the Python SDK (DTFx names)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

EXECUTION_STARTED = 0
EXECUTION_COMPLETED = 1
EXECUTION_FAILED = 2
EXECUTION_TERMINATED = 3
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
SUB_ORCHESTRATION_CREATED = 7
SUB_ORCHESTRATION_COMPLETED = 8
SUB_ORCHESTRATION_FAILED = 9
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_SENT = 14
EVENT_RAISED = 15
CONTINUE_AS_NEW = 16
EXECUTION_SUSPENDED = 19
EXECUTION_RESUMED = 20

EVENT_NAMES = {
    EXECUTION_STARTED: "ExecutionStarted",
    EXECUTION_COMPLETED: "ExecutionCompleted",
    EXECUTION_FAILED: "ExecutionFailed",
    EXECUTION_TERMINATED: "ExecutionTerminated",
    TASK_SCHEDULED: "TaskScheduled",
    TASK_COMPLETED: "TaskCompleted",
    TASK_FAILED: "TaskFailed",
    SUB_ORCHESTRATION_CREATED: "SubOrchestrationInstanceCreated",
    SUB_ORCHESTRATION_COMPLETED: "SubOrchestrationInstanceCompleted",
    SUB_ORCHESTRATION_FAILED: "SubOrchestrationInstanceFailed",
    TIMER_CREATED: "TimerCreated",
    TIMER_FIRED: "TimerFired",
    ORCHESTRATOR_STARTED: "OrchestratorStarted",
    ORCHESTRATOR_COMPLETED: "OrchestratorCompleted",
    EVENT_SENT: "EventSent",
    EVENT_RAISED: "EventRaised",
    CONTINUE_AS_NEW: "ContinueAsNew",
    EXECUTION_SUSPENDED: "ExecutionSuspended",
    EXECUTION_RESUMED: "ExecutionResumed",
}

COMPLETION_TYPES = (TASK_COMPLETED, TASK_FAILED, SUB_ORCHESTRATION_COMPLETED,
                    SUB_ORCHESTRATION_FAILED, TIMER_FIRED)
SCHEDULING_TYPES = (TASK_SCHEDULED, TIMER_CREATED, SUB_ORCHESTRATION_CREATED)


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def new_event(event_type: int, when: datetime, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {"EventType": event_type, "EventId": event_id, "IsPlayed": False,
            "Timestamp": format_timestamp(when), **fields}


def completion_id(event: dict[str, Any]) -> int | None:
    """The task id a completion event refers to (None for other events)."""
    if event["EventType"] == TIMER_FIRED:
        return event.get("TimerId")
    if event["EventType"] in COMPLETION_TYPES:
        return event.get("TaskScheduledId")
    return None


def _json_result(text: Any) -> Any:
    """A stored result as the extension shows it: its JSON value, or the text itself."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return json.loads(stripped)
    except ValueError:
        return stripped


def api_history(
    events: list[dict[str, Any]], *, with_output: bool, with_input: bool = True
) -> list[dict[str, Any]]:
    """History as the HTTP API's `historyEvents`: scheduling merged into completions.

    As the extension's `GetDurableOrchestrationStatusAsync` shapes it: `Result` only with
    output and then parsed into JSON; `Input` (a completion carries its scheduled task's)
    kept unless inputs are hidden; a failure's `Reason` and `Details` always.
    """
    scheduled: dict[int, dict[str, Any]] = {}
    shown: list[dict[str, Any]] = []
    for event in events:
        event_type = event["EventType"]
        if event_type in SCHEDULING_TYPES:
            scheduled[event["EventId"]] = event
            if event_type in (TASK_SCHEDULED, SUB_ORCHESTRATION_CREATED):
                continue
        if event_type in (ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED):
            continue
        item: dict[str, Any] = {"EventType": EVENT_NAMES.get(event_type, str(event_type)),
                                "Timestamp": event["Timestamp"]}
        task_id = completion_id(event)
        origin = scheduled.get(task_id) if task_id is not None else None
        if event_type == EXECUTION_STARTED:
            item["FunctionName"] = event.get("Name")
            item["Input"] = event.get("Input")
        elif origin is not None:
            if origin.get("Name"):
                item["FunctionName"] = origin["Name"]
            item["ScheduledTime"] = origin["Timestamp"]
            if event_type != TIMER_FIRED:
                item["Input"] = origin.get("Input")
        if event_type in (TIMER_CREATED, TIMER_FIRED):
            item["FireAt"] = event.get("FireAt")
        if event_type in (TASK_FAILED, SUB_ORCHESTRATION_FAILED):
            item["Reason"] = event.get("Reason")
            item["Details"] = event.get("Details")
        if event_type in (EVENT_RAISED, EXECUTION_TERMINATED):
            if event_type == EVENT_RAISED:
                item["Name"] = event.get("Name")
            item["Input"] = event.get("Input")
        if event_type in (EXECUTION_COMPLETED, CONTINUE_AS_NEW):
            item["OrchestrationStatus"] = event.get("OrchestrationStatus")
        if with_output and event_type in (EXECUTION_COMPLETED, CONTINUE_AS_NEW, TASK_COMPLETED,
                                          SUB_ORCHESTRATION_COMPLETED):
            item["Result"] = _json_result(event.get("Result"))
        if not with_input:
            item.pop("Input", None)
        shown.append(item)
    return shown
