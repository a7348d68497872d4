"""The task hub's tables: an episode's commit, results standing for work items, the layout
written before the instance's own messages moved beside its history."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import azure.durable_functions as df
from azure.data.tables import UpdateMode

from devhost.engine import events as ev
from devhost.engine.rows import SENTINEL, StoredMessage, WorkItem, history_row_key
from devhost.engine.store import ConcurrentUpdate, TaskHubStore
from tests.devhost.engine.engine_harness import (
    FunctionTable,
    new_hub,
    running_engine,
    task_hub_store,
    wait_for,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STATUS = {"Name": "flow", "RuntimeStatus": "Running"}


def event(event_type: int, event_id: int = -1, **fields: object) -> dict[str, object]:
    return {k: v for k, v in ev.new_event(event_type, NOW, event_id, **fields).items()
            if k != "IsPlayed"}


def result(instance_id: str, task_id: int, value: str) -> StoredMessage:
    return StoredMessage(
        instance_id=instance_id, key=f"work-e1-{task_id:08d}",
        event=event(ev.TASK_COMPLETED, TaskScheduledId=task_id, Result=value),
        execution_id="e1", visible_at=NOW, sequence=f"{task_id:020d}",
    )


def work(instance_id: str, task_id: int) -> WorkItem:
    return WorkItem(instance_id=instance_id, key=f"work-e1-{task_id:08d}", execution_id="e1",
                    task_id=task_id, name="step", input=json.dumps(task_id))


async def commit(store: TaskHubStore, instance_id: str, first: int,
                 events: list[dict[str, object]], etag: str | None, **rows: object
                 ) -> tuple[str, list[str]]:
    return await store.commit_episode(
        instance_id, execution_id="e1", first_sequence=first, new_events=events,
        status=STATUS, etag=etag, work_items=rows.get("work_items", []),  # type: ignore[arg-type]
        timers=[], applied=rows.get("applied", []),  # type: ignore[arg-type]
    )


def test_an_episode_over_a_hundred_rows_reads_back_whole_and_moves_the_sentinel_last(
    connection_string: str,
) -> None:
    started = [event(ev.ORCHESTRATOR_STARTED), event(ev.EXECUTION_STARTED, Name="flow")]
    # 150 work items and their events, some too big to share a table cell.
    scheduled = [event(ev.TASK_SCHEDULED, n, Name="step", Input="x" * (n * 300))
                 for n in range(150)]

    async def scenario() -> None:
        async with task_hub_store(connection_string) as store:
            first_etag, _ = await commit(store, "i1", 0, started, None)
            etag, _ = await commit(store, "i1", 2, scheduled, first_etag,
                                   work_items=[work("i1", n) for n in range(150)])
            sentinel, history = await store.read_history("i1")
            assert history == started + scheduled
            assert sentinel is not None and sentinel["etag"] == etag
            _, items = await store.queue.all_pending()
            assert sorted(item.task_id for item in items) == list(range(150))
            # A commit with an old ETag is refused, and the rows it wrote ahead of the
            # sentinel (beyond the sentinel's length) are never read.
            stale = [event(ev.TASK_SCHEDULED, n, Name="late", Input="y" * 20_000)
                     for n in range(150, 260)]
            try:
                await commit(store, "i1", 152, stale, first_etag)
            except ConcurrentUpdate:
                pass
            else:
                raise AssertionError("a commit with a stale ETag was stored")
            _, history = await store.read_history("i1")
            assert history == started + scheduled

    asyncio.run(scenario())


def test_an_applied_message_already_gone_does_not_hold_up_the_commit(
    connection_string: str,
) -> None:
    async def scenario() -> None:
        async with task_hub_store(connection_string) as store:
            etag, _ = await commit(store, "i1", 0, [event(ev.ORCHESTRATOR_STARTED)], None)
            await store.queue.send_message(result("i1", 1, "1"))
            etag, left = await commit(
                store, "i1", 1, [event(ev.TASK_COMPLETED, TaskScheduledId=1, Result="1")],
                etag, applied=["work-e1-00000001", "work-e1-00000009"],
            )
            assert left == []
            assert not await store.queue.has_message("i1", "work-e1-00000001")
            _, history = await store.read_history("i1")
            assert [e["EventType"] for e in history] == [ev.ORCHESTRATOR_STARTED,
                                                          ev.TASK_COMPLETED]

    asyncio.run(scenario())


def test_a_result_takes_its_work_items_row_only_while_the_row_is_there(
    connection_string: str,
) -> None:
    async def scenario() -> None:
        async with task_hub_store(connection_string) as store:
            await commit(store, "i1", 0, [event(ev.ORCHESTRATOR_STARTED)], None,
                         work_items=[work("i1", n) for n in (1, 2, 3)])
            first = result("i1", 1, '"first"')
            assert await store.queue.complete_work_items([(work("i1", 1), first)]) == [first]
            messages, items = await store.queue.all_pending()
            assert [(m.key, m.event["Result"]) for m in messages] == \
                [("work-e1-00000001", '"first"')]
            assert sorted(item.task_id for item in items) == [2, 3]
            # Applied (its row deleted), a result that comes again is not stored again;
            # beside it, a result whose row is there is.
            await store.queue.delete_messages("i1", ["work-e1-00000001"])
            again = result("i1", 1, '"again"')
            second = result("i1", 2, '"second"')
            assert await store.queue.complete_work_items(
                [(work("i1", 1), again), (work("i1", 2), second)]) == [None, second]
            assert await store.queue.complete_work_items([(work("i1", 1), again)]) == [None]
            messages, items = await store.queue.all_pending()
            assert [(m.key, m.event["Result"]) for m in messages] == \
                [("work-e1-00000002", '"second"')]
            assert [item.task_id for item in items] == [3]

    asyncio.run(scenario())


def two_steps(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("step", 1)
    second = yield context.call_activity("step", first + 1)
    return second


def test_a_task_hub_written_before_the_move_carries_on(connection_string: str) -> None:
    """History a row per event and the instance's work items in the Messages table (the
    layout before): a new leader moves the work items beside the history and finishes."""
    hub = new_hub()
    gate = asyncio.Event()

    async def held(value: int) -> int:
        await gate.wait()
        return value

    async def scenario() -> None:
        first = FunctionTable({"two_steps": two_steps}, {"step": held})
        async with running_engine(connection_string, first, task_hub=hub) as engine:
            instance_id = await engine.start_instance("two_steps", None, None)
            await wait_for(engine, instance_id, ("Running",))
            while not first.activity_calls:
                await asyncio.sleep(0.02)
        async with task_hub_store(connection_string, hub) as store:
            sentinel, history = await store.read_history(instance_id)
            assert sentinel is not None
            prefix = f"{sentinel['ExecutionId']}."
            async for row in store.history.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": instance_id}):
                key = row["RowKey"]
                if key.startswith(prefix):
                    await store.history.delete_entity(instance_id, key)
                elif key.startswith("work-"):
                    await store.messages.upsert_entity(dict(row), mode=UpdateMode.REPLACE)
                    await store.history.delete_entity(instance_id, key)
            for sequence, stored in enumerate(history):
                await store.history.upsert_entity({
                    "PartitionKey": instance_id,
                    "RowKey": history_row_key(sentinel["ExecutionId"], sequence),
                    "ExecutionId": sentinel["ExecutionId"],
                    "EventType": stored["EventType"], "Event": json.dumps(stored),
                })
            assert await store.history.get_entity(instance_id, SENTINEL)
        second = FunctionTable({"two_steps": two_steps}, {"step": lambda value: value})
        async with running_engine(connection_string, second, task_hub=hub) as engine:
            status = await wait_for(engine, instance_id)
            assert (status.runtime_status, json.loads(status.output or "null")) == \
                ("Completed", 2)
        assert second.activity_calls == [("step", 1), ("step", 2)]

    asyncio.run(scenario())
