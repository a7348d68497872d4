"""The extension-side replay of the SDK's actions: ids, retries, waits (no storage needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devhost.engine import events as ev
from devhost.engine.replay import (
    CreateTimer,
    OrchestrationRuleBroken,
    ScheduleActivity,
    StartSubOrchestration,
    replay_actions,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def started() -> list[dict]:
    return [ev.new_event(ev.ORCHESTRATOR_STARTED, at(0)),
            ev.new_event(ev.EXECUTION_STARTED, at(0), Name="o", Version="", Input=None)]


def activity(name: str) -> dict:
    return {"actionType": 0, "functionName": name, "input": None}


def replay(history: list[dict], actions: list[dict], **extra):
    return replay_actions(history=history, actions=[actions], schema_version=2,
                          instance_id="i", execution_id="e", parent_instance_id=None, **extra)


def test_when_all_children_get_consecutive_ids_and_the_walk_waits_for_all() -> None:
    actions = [{"actionType": 12, "compoundActions": [activity("a"), activity("b")]},
               activity("c")]
    result = replay(started(), actions)
    assert [(d.task_id, d.name) for d in result.new_decisions] == [(0, "a"), (1, "b")]
    assert not result.finished_walk

    history = [
        *started(),
        ev.new_event(ev.TASK_SCHEDULED, at(0), 0, Name="a"),
        ev.new_event(ev.TASK_SCHEDULED, at(0), 1, Name="b"),
        ev.new_event(ev.ORCHESTRATOR_STARTED, at(1)),
        ev.new_event(ev.TASK_FAILED, at(1), TaskScheduledId=0, Reason="x"),
    ]
    # As .NET's Task.WhenAll: one failure does not end the wait, so "c" is not scheduled.
    assert replay(history, actions).new_decisions == []
    history.append(ev.new_event(ev.TASK_COMPLETED, at(1), TaskScheduledId=1, Result="1"))
    assert [(d.task_id, d.name) for d in replay(history, actions).new_decisions] == [(2, "c")]


def test_retry_schedules_a_timer_after_each_failure_then_the_next_attempt() -> None:
    action = {"actionType": 1, "functionName": "f", "input": None,
              "retryOptions": {"firstRetryIntervalInMilliseconds": 5000, "maxNumberOfAttempts": 2}}
    history = [
        *started(),
        ev.new_event(ev.TASK_SCHEDULED, at(0), 0, Name="f"),
        ev.new_event(ev.ORCHESTRATOR_STARTED, at(3)),
        ev.new_event(ev.TASK_FAILED, at(3), TaskScheduledId=0, Reason="boom"),
    ]
    timer = replay(history, [action]).new_decisions
    assert timer == [CreateTimer(1, at(8))]  # the failure episode's time + the interval
    history += [ev.new_event(ev.TIMER_CREATED, at(3), 1, FireAt=ev.format_timestamp(at(8))),
                ev.new_event(ev.ORCHESTRATOR_STARTED, at(8)),
                ev.new_event(ev.TIMER_FIRED, at(8), TimerId=1)]
    assert replay(history, [action]).new_decisions == [ScheduleActivity(2, "f", None)]
    history += [ev.new_event(ev.TASK_SCHEDULED, at(8), 2, Name="f"),
                ev.new_event(ev.ORCHESTRATOR_STARTED, at(9)),
                ev.new_event(ev.TASK_FAILED, at(9), TaskScheduledId=2, Reason="boom")]
    # DTFx waits one more timer after the last attempt before giving up; so does the SDK.
    assert replay(history, [action]).new_decisions == [CreateTimer(3, at(14))]


def test_events_raised_before_the_wait_are_buffered_and_matched_in_order() -> None:
    history = [
        *started(),
        ev.new_event(ev.ORCHESTRATOR_STARTED, at(1)),
        ev.new_event(ev.EVENT_RAISED, at(1), Name="go", Input="1"),
    ]
    actions = [{"actionType": 6, "externalEventName": "go"}, activity("after")]
    result = replay(history, actions)
    assert [d.name for d in result.new_decisions] == ["after"]
    assert result.unconsumed_events == []
    unheard = replay(history, [activity("other")])
    assert [e["Name"] for e in unheard.unconsumed_events] == ["go"]


def test_sub_orchestration_without_id_gets_the_execution_scoped_id() -> None:
    actions = [{"actionType": 2, "functionName": "child", "input": "3", "instanceId": None}]
    assert replay(started(), actions).new_decisions == [
        StartSubOrchestration(0, "child", "e:0", "3")
    ]
    own = [{"actionType": 2, "functionName": "child", "input": None, "instanceId": "i"}]
    with pytest.raises(OrchestrationRuleBroken, match="must be different"):
        replay(started(), own)


def test_history_the_orchestrator_no_longer_produces_is_non_deterministic() -> None:
    history = [*started(), ev.new_event(ev.TIMER_CREATED, at(0), 0, FireAt="x")]
    with pytest.raises(OrchestrationRuleBroken, match="Non-Deterministic"):
        replay(history, [activity("a")])


def test_entities_are_refused_with_a_clear_message() -> None:
    with pytest.raises(OrchestrationRuleBroken, match="not supported"):
        replay(started(), [{"actionType": 7, "instanceId": "@e@k", "operation": "op"}])


def test_call_http_is_the_extension_s_built_in_http_activity() -> None:
    request = {"method": "GET", "uri": "http://127.0.0.1:9/x", "headers": {"A": "b"}}
    result = replay(started(), [{"actionType": 8, "httpRequest": request}])

    assert len(result.new_decisions) == 1
    decision = result.new_decisions[0]
    assert isinstance(decision, ScheduleActivity)
    assert (decision.task_id, decision.name) == (0, "BuiltIn::HttpActivity")
    assert json.loads(decision.input) == request
