"""Retries, events, timers racing events, sub-orchestrations, continue-as-new, failures."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import azure.durable_functions as df

from tests.devhost.engine.engine_harness import (
    FunctionTable,
    running_engine,
    start_input,
    wait_for,
)


class Flaky:
    """Fails the first `failures` calls, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, value: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ValueError(f"attempt {self.calls} failed")
        return f"ok {value}"


def with_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=200, max_number_of_attempts=3)
    try:
        result = yield context.call_activity_with_retry("flaky", options, "x")
    except Exception as error:
        return {"caught": str(error)}
    return {"result": result}


def test_retry_reruns_after_the_interval_until_success(connection_string: str) -> None:
    flaky = Flaky(failures=2)
    functions = FunctionTable({"with_retry": with_retry}, {"flaky": flaky})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("with_retry", None, None)
            status = await wait_for(engine, instance_id)
            assert json.loads(status.output) == {"result": "ok x"}
            history = (await engine.get_instance(instance_id, show_history=True)).history
            kinds = [event["EventType"] for event in history]
            assert kinds.count("TaskFailed") == 2
            assert kinds.count("TimerFired") == 2
            fired = [event for event in history if event["EventType"] == "TimerFired"]
            failed = [event for event in history if event["EventType"] == "TaskFailed"]
            assert failed[0]["Reason"] == (
                "Activity function 'flaky' failed: ValueError: attempt 1 failed"
            )
            # The retry timer waits the first retry interval after the failure was seen.
            gap = (
                df_time(fired[0]["Timestamp"]) - df_time(failed[0]["Timestamp"])
            ).total_seconds()
            assert gap >= 0.15

    asyncio.run(scenario())
    assert flaky.calls == 3


def test_retry_gives_up_after_max_attempts_with_the_last_message(connection_string: str) -> None:
    flaky = Flaky(failures=10)
    functions = FunctionTable({"with_retry": with_retry}, {"flaky": flaky})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("with_retry", None, None)
            status = await wait_for(engine, instance_id)
            assert status.runtime_status == "Completed"
            caught = json.loads(status.output)["caught"]
            assert caught.startswith(
                "Activity function 'flaky' failed: ValueError: attempt 3 failed"
            )

    asyncio.run(scenario())
    assert flaky.calls == 3


def df_time(text: str):
    from devhost.engine.events import parse_timestamp

    return parse_timestamp(text)


def approval(context: df.DurableOrchestrationContext):
    deadline = context.current_utc_datetime + timedelta(seconds=float(context.get_input()))
    timeout = context.create_timer(deadline)
    answer = context.wait_for_external_event("Approval")
    winner = yield context.task_any([answer, timeout])
    if winner == answer:
        timeout.cancel()
        return {"approved": answer.result}
    return "timed out"


def test_event_wins_the_race_against_a_timer(connection_string: str) -> None:
    functions = FunctionTable({"approval": approval})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("approval", None, start_input(30))
            await wait_for(engine, instance_id, ("Running",))
            await engine.raise_event(instance_id, "Approval", json.dumps(True))
            status = await wait_for(engine, instance_id, timeout=10)
            assert json.loads(status.output) == {"approved": True}

    asyncio.run(scenario())


def test_timer_wins_when_no_event_comes(connection_string: str) -> None:
    functions = FunctionTable({"approval": approval})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("approval", None, start_input(0.5))
            status = await wait_for(engine, instance_id, timeout=10)
            assert json.loads(status.output) == "timed out"

    asyncio.run(scenario())


def two_events(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("slow", None)
    a = yield context.wait_for_external_event("A")
    b = yield context.wait_for_external_event("B")
    return [first, a, b]


def test_events_raised_before_the_wait_are_buffered(connection_string: str) -> None:
    gate = asyncio.Event()

    async def slow(_: object) -> str:
        await gate.wait()
        return "done"

    functions = FunctionTable({"two_events": two_events}, {"slow": slow})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("two_events", None, None)
            await wait_for(engine, instance_id, ("Running",))
            await engine.raise_event(instance_id, "B", json.dumps("b"))
            await engine.raise_event(instance_id, "A", json.dumps("a"))
            await asyncio.sleep(0.3)
            gate.set()
            status = await wait_for(engine, instance_id)
            assert json.loads(status.output) == ["done", "a", "b"]

    asyncio.run(scenario())


def counter(context: df.DurableOrchestrationContext):
    state = context.get_input()
    if state["n"] < 3:
        context.set_custom_status({"n": state["n"]})
        context.continue_as_new({"n": state["n"] + 1, "seen": state["seen"]})
        return None
    signal = yield context.wait_for_external_event("go")
    return {"n": state["n"], "signal": signal}


def test_continue_as_new_restarts_with_new_input_and_keeps_unprocessed_events(
    connection_string: str,
) -> None:
    functions = FunctionTable({"counter": counter})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance(
                "counter", "counter-1", start_input({"n": 0, "seen": []})
            )
            status = await wait_for(engine, instance_id, ("Running",))
            # Raised while generations roll over: it must reach the last generation.
            await engine.raise_event(instance_id, "go", json.dumps("now"))
            status = await wait_for(engine, instance_id)
            assert status.runtime_status == "Completed"
            assert json.loads(status.output) == {"n": 3, "signal": "now"}
            assert json.loads(status.custom_status) == {"n": 2}
            history = (await engine.get_instance(instance_id, show_history=True)).history
            assert history[0]["EventType"] == "ExecutionStarted"
            assert sum(1 for e in history if e["EventType"] == "ExecutionStarted") == 1

    asyncio.run(scenario())
    generations = [context["input"] for name, context in functions.episodes
                   if not context["isReplaying"]]
    assert [json.loads(g)["n"] for g in generations] == [0, 1, 2, 3]


def parent(context: df.DurableOrchestrationContext):
    first = yield context.call_sub_orchestrator("child", 2)
    second = yield context.call_sub_orchestrator("child", 5, "fixed-child")
    try:
        yield context.call_sub_orchestrator("broken", None)
    except Exception as error:
        failure = str(error)
    return {"first": first, "second": second, "failure": failure}


def child(context: df.DurableOrchestrationContext):
    value = context.get_input()
    doubled = yield context.call_activity("double", value)
    return {"doubled": doubled, "parent": context.parent_instance_id}


def broken(context: df.DurableOrchestrationContext):
    yield context.call_activity("double", 1)
    raise RuntimeError("child broke")


def test_sub_orchestrations_return_results_and_failures(connection_string: str) -> None:
    functions = FunctionTable(
        {"parent": parent, "child": child, "broken": broken}, {"double": lambda n: n * 2}
    )

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("parent", "parent-1", None)
            status = await wait_for(engine, instance_id)
            assert status.runtime_status == "Completed"
            output = json.loads(status.output)
            assert output["first"] == {"doubled": 4, "parent": "parent-1"}
            assert output["second"] == {"doubled": 10, "parent": "parent-1"}
            assert "Orchestrator function 'broken' failed: child broke" in output["failure"]
            fixed = await engine.get_instance("fixed-child")
            assert fixed.runtime_status == "Completed"
            broken_children, _ = await engine.query_instances(
                runtime_status=["Failed"], created_from=None, created_to=None,
                instance_id_prefix=None, top=None, continuation_token=None,
            )
            assert [s.name for s in broken_children] == ["broken"]
            assert json.loads(broken_children[0].output) == (
                "Orchestrator function 'broken' failed: child broke"
            )

    asyncio.run(scenario())


def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("explode", None)
    return "unreachable"


def test_unhandled_activity_failure_fails_the_orchestration_with_its_message(
    connection_string: str,
) -> None:
    def explode(_: object) -> None:
        raise KeyError("missing")

    functions = FunctionTable({"failing": failing}, {"explode": explode})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("failing", None, None)
            status = await wait_for(engine, instance_id)
            assert status.runtime_status == "Failed"
            message = json.loads(status.output)
            assert message.startswith(
                "Orchestrator function 'failing' failed: Activity function 'explode' failed: "
                "KeyError: 'missing'"
            )

    asyncio.run(scenario())


def nested(context: df.DurableOrchestrationContext):
    inner_all = context.task_all(
        [context.call_activity("echo", "a"), context.call_activity("echo", "b")]
    )
    first = yield context.task_any([inner_all, context.create_timer(
        context.current_utc_datetime + timedelta(seconds=30))])
    results = first.result
    last = yield context.call_activity("echo", "c")
    return [*results, last]


def test_nested_when_all_inside_when_any(connection_string: str) -> None:
    functions = FunctionTable({"nested": nested}, {"echo": lambda value: value})

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("nested", None, None)
            status = await wait_for(engine, instance_id)
            assert json.loads(status.output) == ["a", "b", "c"]

    asyncio.run(scenario())


def retries_in_parallel(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=4)
    results = yield context.task_all([
        context.call_activity_with_retry("flaky_a", options, "a"),
        context.call_activity("steady", "s"),
        context.call_activity_with_retry("flaky_b", options, "b"),
    ])
    after = yield context.call_activity("steady", "after")
    return [*results, after]


def test_parallel_retries_keep_task_ids_in_step_with_the_sdk(connection_string: str) -> None:
    flaky_a, flaky_b = Flaky(failures=1), Flaky(failures=3)
    functions = FunctionTable(
        {"parallel": retries_in_parallel},
        {"flaky_a": flaky_a, "flaky_b": flaky_b, "steady": lambda v: f"steady {v}"},
    )

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("parallel", None, None)
            status = await wait_for(engine, instance_id)
            assert status.runtime_status == "Completed", status.output
            assert json.loads(status.output) == ["ok a", "steady s", "ok b", "steady after"]

    asyncio.run(scenario())
    assert (flaky_a.calls, flaky_b.calls) == (2, 4)


def retrying_parent(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=3)
    result = yield context.call_sub_orchestrator_with_retry(
        "sometimes_broken", options, "payload", "retried-child"
    )
    return result


def test_sub_orchestration_with_retry_runs_the_child_again(connection_string: str) -> None:
    attempts: list[str] = []

    def note(value: str) -> int:
        attempts.append(value)
        return len(attempts)

    def sometimes_broken(context: df.DurableOrchestrationContext):
        attempt = yield context.call_activity("note", context.get_input())
        if attempt < 2:
            raise RuntimeError(f"attempt {attempt} broke")
        return f"child ok on attempt {attempt}"

    functions = FunctionTable(
        {"retrying_parent": retrying_parent, "sometimes_broken": sometimes_broken},
        {"note": note},
    )

    async def scenario() -> None:
        async with running_engine(connection_string, functions) as engine:
            instance_id = await engine.start_instance("retrying_parent", None, None)
            status = await wait_for(engine, instance_id)
            assert json.loads(status.output) == "child ok on attempt 2"
            child_status = await engine.get_instance("retried-child")
            assert child_status.runtime_status == "Completed"

    asyncio.run(scenario())
    assert attempts == ["payload", "payload"]
