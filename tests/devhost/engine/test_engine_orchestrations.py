"""Orchestration patterns on the engine with Azurite, each with what a user would observe."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import azure.durable_functions as df

from tests.devhost.engine.engine_harness import FunctionTable, running_engine, start_input, wait_for


def chain(context: df.DurableOrchestrationContext):
    city = context.get_input()
    first = yield context.call_activity("greet", city["name"])
    second = yield context.call_activity("greet", first)
    return [first, second]


def test_chaining_passes_results_along_and_completes(connection_string: str) -> None:
    functions = FunctionTable({"chain": chain}, {"greet": lambda name: f"Hello {name}"})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("chain", None, start_input({"name": "Oslo"}))
            status = await wait_for(engine, instance_id)
            assert status.runtime_status == "Completed"
            assert json.loads(status.output) == ["Hello Oslo", "Hello Hello Oslo"]
            assert status.name == "chain"
            assert json.loads(json.loads(status.input)) == {"name": "Oslo"}
            detailed = await engine.get_instance(instance_id, show_history=True,
                                                 show_history_output=True)
            kinds = [event["EventType"] for event in detailed.history]
            assert kinds == ["ExecutionStarted", "TaskCompleted", "TaskCompleted",
                             "ExecutionCompleted"]
            assert detailed.history[1]["FunctionName"] == "greet"

    asyncio.run(scenario())
    assert functions.activity_calls == [("greet", "Oslo"), ("greet", "Hello Oslo")]
    # The context is the one the extension builds for out-of-proc SDKs.
    contexts = [context for _, context in functions.episodes]
    assert set(contexts[0]) == {"history", "input", "instanceId", "isReplaying",
                                "parentInstanceId", "upperSchemaVersion",
                                "upperSchemaVersionNew"}
    assert [c["isReplaying"] for c in contexts] == [False, True, True]
    assert contexts[0]["input"] == json.dumps({"name": "Oslo"})
    first, last = contexts[0]["history"], contexts[-1]["history"]
    assert [e["EventType"] for e in first] == [12, 0]
    assert [e["EventType"] for e in last] == [12, 0, 4, 13, 12, 5, 4, 13, 12, 5]
    assert [e["IsPlayed"] for e in last] == [True] * 8 + [False] * 2
    assert [e["EventId"] for e in last if e["EventType"] == 4] == [0, 1]
    assert [e["TaskScheduledId"] for e in last if e["EventType"] == 5] == [0, 1]
    assert last[1]["Name"] == "chain"
    assert last[1]["Input"] == json.dumps(json.dumps({"name": "Oslo"}))


def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    results = yield context.task_all(
        [context.call_activity("square", n) for n in range(count)]
    )
    return sum(results)


def test_fan_out_fan_in_runs_every_activity_once(connection_string: str) -> None:
    # 130 branches: the episode that schedules them writes more rows than one table
    # transaction holds, so history and work items go in several.
    functions = FunctionTable({"fan_out": fan_out}, {"square": lambda n: n * n})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("fan_out", None, start_input(130))
            status = await wait_for(engine, instance_id, timeout=60)
            assert status.runtime_status == "Completed"
            assert json.loads(status.output) == sum(n * n for n in range(130))
            history = (await engine.get_instance(instance_id, show_history=True)).history
            assert sum(1 for e in history if e["EventType"] == "TaskCompleted") == 130

    asyncio.run(scenario())
    assert sorted(value for _, value in functions.activity_calls) == list(range(130))


def timer_then_activity(context: df.DurableOrchestrationContext):
    start = context.current_utc_datetime
    yield context.create_timer(start + timedelta(seconds=1))
    after = context.current_utc_datetime
    return (after - start).total_seconds()


def test_durable_timer_fires_at_its_time_and_moves_current_time(connection_string: str) -> None:
    functions = FunctionTable({"timer": timer_then_activity})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("timer", None, None)
            status = await wait_for(engine, instance_id)
            assert status.runtime_status == "Completed"
            waited = json.loads(status.output)
            assert 1.0 <= waited < 10.0  # on time; a loaded machine may be a little late
            elapsed = (status.last_updated_time - status.created_time).total_seconds()
            assert elapsed >= 1.0

    asyncio.run(scenario())
