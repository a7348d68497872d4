"""Instance management: start rules, terminate, suspend/resume, query, purge, leases, restart."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import pytest

from devhost.engine import InstanceAlreadyExists, InstanceNotFound
from tests.devhost.engine.engine_harness import (
    FunctionTable,
    new_hub,
    running_engine,
    start_input,
    task_hub_store,
    wait_for,
)


def waits_for_go(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("go")
    done = yield context.call_activity("echo", value)
    return done


def quick(context: df.DurableOrchestrationContext):
    return context.get_input()
    yield


def functions() -> FunctionTable:
    return FunctionTable({"waits": waits_for_go, "quick": quick}, {"echo": lambda v: v})


def test_non_running_states_refuses_a_start_over_a_busy_instance(connection_string: str) -> None:
    async def scenario() -> None:
        async with running_engine(connection_string, functions()) as engine:
            await engine.start_instance("waits", "singleton", None)
            await wait_for(engine, "singleton", ("Running",))
            with pytest.raises(InstanceAlreadyExists, match="status Running already exists"):
                await engine.start_instance("waits", "singleton", None)
            await engine.raise_event("singleton", "go", json.dumps(1))
            await wait_for(engine, "singleton")
            # A finished instance can be started again under the same id.
            await engine.start_instance("quick", "singleton", start_input("again"))
            status = await wait_for(engine, "singleton")
            assert (status.name, json.loads(status.output)) == ("quick", "again")

    asyncio.run(scenario())


def test_a_row_left_pending_after_the_first_episode_is_put_right(connection_string: str) -> None:
    """The row of an ordinary episode is written after its history: a host that stops in
    between leaves a Pending row whose instance is running. The next leader says so."""
    hub = new_hub()

    async def scenario() -> None:
        async with running_engine(connection_string, functions(), task_hub=hub) as engine:
            await engine.start_instance("waits", "behind", None)
            await wait_for(engine, "behind", ("Running",))
        async with task_hub_store(connection_string, hub) as store:
            row = await store.read_instance("behind")
            assert row is not None
            del row["etag"]
            await store.write_instance({**row, "RuntimeStatus": "Pending"})
        async with running_engine(connection_string, functions(), task_hub=hub) as engine:
            await wait_for(engine, "behind", ("Running",), timeout=10)
            await engine.raise_event("behind", "go", json.dumps(3))
            status = await wait_for(engine, "behind")
            assert json.loads(status.output or "null") == 3

    asyncio.run(scenario())


def test_any_state_lets_a_start_replace_a_running_instance(connection_string: str) -> None:
    async def scenario() -> None:
        async with running_engine(
            connection_string, functions(), overridable_existing_instance_states="AnyState"
        ) as engine:
            await engine.start_instance("waits", "replaced", None)
            await wait_for(engine, "replaced", ("Running",))
            await engine.start_instance("quick", "replaced", start_input(7))
            status = await wait_for(engine, "replaced")
            assert (status.name, json.loads(status.output)) == ("quick", 7)

    asyncio.run(scenario())


def test_terminate_ends_a_waiting_instance_with_the_reason(connection_string: str) -> None:
    async def scenario() -> None:
        async with running_engine(connection_string, functions()) as engine:
            await engine.start_instance("waits", "doomed", None)
            await wait_for(engine, "doomed", ("Running",))
            await engine.terminate("doomed", "no longer needed")
            status = await wait_for(engine, "doomed")
            assert status.runtime_status == "Terminated"
            assert json.loads(status.output) == "no longer needed"
            # Events for a terminated instance are discarded.
            await engine.raise_event("doomed", "go", json.dumps(1))
            await asyncio.sleep(0.3)
            assert (await engine.get_instance("doomed")).runtime_status == "Terminated"
            with pytest.raises(InstanceNotFound):
                await engine.terminate("nobody", None)

    asyncio.run(scenario())


def test_suspended_instance_holds_events_until_resumed(connection_string: str) -> None:
    async def scenario() -> None:
        async with running_engine(connection_string, functions()) as engine:
            await engine.start_instance("waits", "paused", None)
            await wait_for(engine, "paused", ("Running",))
            await engine.suspend("paused", "maintenance")
            await wait_for(engine, "paused", ("Suspended",))
            await engine.raise_event("paused", "go", json.dumps("later"))
            await asyncio.sleep(0.5)
            assert (await engine.get_instance("paused")).runtime_status == "Suspended"
            await engine.resume("paused", "back")
            status = await wait_for(engine, "paused")
            assert json.loads(status.output) == "later"

    asyncio.run(scenario())


def test_query_filters_and_pages_and_purge_deletes(connection_string: str) -> None:
    async def scenario() -> None:
        async with running_engine(connection_string, functions()) as engine:
            before = datetime.now(UTC) - timedelta(seconds=1)
            for n in range(5):
                await engine.start_instance("quick", f"job-{n}", start_input(n))
            await engine.start_instance("waits", "other-1", None)
            for n in range(5):
                await wait_for(engine, f"job-{n}")
            await wait_for(engine, "other-1", ("Running",))

            page, token = await engine.query_instances(
                runtime_status=["Completed"], created_from=before, created_to=None,
                instance_id_prefix="job-", top=2, continuation_token=None,
            )
            seen = [s.instance_id for s in page]
            while token:
                page, token = await engine.query_instances(
                    runtime_status=["Completed"], created_from=before, created_to=None,
                    instance_id_prefix="job-", top=2, continuation_token=token,
                )
                seen += [s.instance_id for s in page]
            assert seen == [f"job-{n}" for n in range(5)]
            running, _ = await engine.query_instances(
                runtime_status=["Running"], created_from=None, created_to=None,
                instance_id_prefix=None, top=None, continuation_token=None,
            )
            assert [s.instance_id for s in running] == ["other-1"]
            future, _ = await engine.query_instances(
                runtime_status=None, created_from=datetime.now(UTC) + timedelta(hours=1),
                created_to=None, instance_id_prefix=None, top=None, continuation_token=None,
            )
            assert future == []

            assert await engine.purge("job-0") == 1
            assert await engine.purge("job-0") == 0
            assert await engine.get_instance("job-0") is None
            deleted = await engine.purge_many(
                created_from=before, created_to=datetime.now(UTC), runtime_status=["Completed"]
            )
            assert deleted == 4
            assert (await engine.get_instance("other-1")).runtime_status == "Running"

    asyncio.run(scenario())


def big(context: df.DurableOrchestrationContext):
    text = yield context.call_activity("make_big", context.get_input())
    return len(text)


def test_values_larger_than_a_table_cell_round_trip(connection_string: str) -> None:
    table = FunctionTable({"big": big}, {"make_big": lambda n: "x" * n})

    async def scenario() -> None:
        async with running_engine(connection_string, table) as engine:
            instance_id = await engine.start_instance("big", None, start_input(200_000))
            status = await wait_for(engine, instance_id)
            assert json.loads(status.output) == 200_000

    asyncio.run(scenario())


def sleeper(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1.5))
    result = yield context.call_activity("echo", "after the timer")
    return result


def test_second_engine_waits_for_the_lease_then_finishes_the_work(connection_string: str) -> None:
    hub = new_hub()
    first_functions = FunctionTable({"sleeper": sleeper}, {"echo": lambda v: v})
    second_functions = FunctionTable({"sleeper": sleeper}, {"echo": lambda v: v})

    async def scenario() -> None:
        async with (
            running_engine(connection_string, first_functions, task_hub=hub) as first,
            running_engine(connection_string, second_functions, task_hub=hub) as second,
        ):
            assert first.is_leader and not second.is_leader
            # A start on the standby host is run by the leader.
            instance_id = await second.start_instance("sleeper", None, None)
            await wait_for(first, instance_id, ("Running",))
            await first.stop()  # releases the lease with the timer still pending
            status = await wait_for(second, instance_id, timeout=20)
            assert json.loads(status.output) == "after the timer"
            assert second.is_leader

    asyncio.run(scenario())
    assert [name for name, _ in first_functions.activity_calls] == []
    assert [name for name, _ in second_functions.activity_calls] == ["echo"]


def fan_out_slowly(context: df.DurableOrchestrationContext):
    yield context.task_all([context.call_activity("slow", n) for n in range(8)])
    return "done"


def test_activities_and_episodes_run_within_their_concurrency_limits(
    connection_string: str,
) -> None:
    running = {"activities": 0, "episodes": 0}
    peaks = {"activities": 0, "episodes": 0}

    async def slow(_: int) -> None:
        running["activities"] += 1
        peaks["activities"] = max(peaks["activities"], running["activities"])
        await asyncio.sleep(0.2)
        running["activities"] -= 1

    table = FunctionTable({"fan": fan_out_slowly}, {"slow": slow})
    plain_episode = table.invoke_orchestrator

    async def counted_episode(name: str, context_json: str) -> str:
        running["episodes"] += 1
        peaks["episodes"] = max(peaks["episodes"], running["episodes"])
        try:
            await asyncio.sleep(0.05)
            return await plain_episode(name, context_json)
        finally:
            running["episodes"] -= 1

    table.invoke_orchestrator = counted_episode  # type: ignore[method-assign]

    async def scenario() -> None:
        async with running_engine(
            connection_string, table, max_concurrent_activities=3,
            max_concurrent_orchestrators=2,
        ) as engine:
            ids = [await engine.start_instance("fan", None, None) for _ in range(4)]
            for instance_id in ids:
                assert (await wait_for(engine, instance_id, timeout=30)).runtime_status == (
                    "Completed"
                )

    asyncio.run(scenario())
    assert peaks == {"activities": 3, "episodes": 2}


def test_a_restart_writes_the_end_of_an_instance_whose_row_missed_it(
    connection_string: str,
) -> None:
    """The row of an instance is written after its history: a host that stopped between
    the two left a history that ended (terminated, completed) under a row still Running,
    and nothing that would run an episode again. The next host writes the end from the
    history's sentinel; a row that is right (a waiting instance) stays as it is."""
    hub = new_hub()

    async def scenario() -> None:
        async with running_engine(connection_string, functions(), task_hub=hub) as engine:
            await engine.start_instance("waits", "terminated", None)
            await engine.start_instance("quick", "completed", start_input("done"))
            await engine.start_instance("waits", "waiting", None)
            await wait_for(engine, "terminated", ("Running",))
            await engine.terminate("terminated", "no longer needed")
            await wait_for(engine, "terminated")
            await wait_for(engine, "completed")
            await wait_for(engine, "waiting", ("Running",))
        async with task_hub_store(connection_string, hub) as store:
            for instance_id in ("terminated", "completed"):
                row = await store.read_instance(instance_id)
                assert row is not None
                left_running = {key: value for key, value in row.items() if key != "etag"}
                await store.write_instance({**left_running, "RuntimeStatus": "Running"})
        async with running_engine(connection_string, functions(), task_hub=hub) as engine:
            terminated = await engine.get_instance("terminated")
            completed = await engine.get_instance("completed")
            waiting = await engine.get_instance("waiting")

        assert terminated is not None and completed is not None and waiting is not None
        assert (terminated.runtime_status, json.loads(terminated.output)) == (
            "Terminated", "no longer needed")
        assert (completed.runtime_status, json.loads(completed.output)) == ("Completed", "done")
        assert waiting.runtime_status == "Running"

    asyncio.run(scenario())
