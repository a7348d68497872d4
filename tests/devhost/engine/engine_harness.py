"""Run the durable engine on Azurite with orchestrators written against the real SDK.

`FunctionTable` stands in for the host shell: it runs orchestrators through the SDK's own
entry point (`Orchestrator.create(fn)(context_json)`) and activities through the Python
worker's activity converter, as devhost's invoker does. Each test gets its own task hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import azure.durable_functions as df
from azure.functions.durable_functions import ActivityTriggerConverter
from azure.functions.meta import Datum

from devhost.engine import DurableEngine, InstanceStatus
from devhost.engine.store import TaskHubStore
from devhost.storage_account import StorageAccount

OUT_OF_PROC_DATA_MARKER = "$OutOfProcData$:"
TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")


class FunctionTable:
    """Orchestrators and activities by name, invoked the way devhost's shell invokes them."""

    def __init__(
        self,
        orchestrators: dict[str, Callable[..., Any]],
        activities: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.orchestrators = {
            name: df.Orchestrator.create(fn) for name, fn in orchestrators.items()
        }
        self.activities = activities or {}
        self.activity_calls: list[tuple[str, Any]] = []
        self.episodes: list[tuple[str, dict[str, Any]]] = []

    async def invoke_orchestrator(self, name: str, context_json: str) -> str:
        self.episodes.append((name, json.loads(context_json)))
        try:
            return self.orchestrators[name](context_json)
        except Exception as error:
            message = str(error)
            if OUT_OF_PROC_DATA_MARKER not in message:
                raise
            return message.split(OUT_OF_PROC_DATA_MARKER, 1)[1]

    async def invoke_activity(self, name: str, input_json: str | None) -> str | None:
        value = ActivityTriggerConverter.decode(
            Datum(input_json if input_json is not None else "null", "json"), trigger_metadata={}
        )
        self.activity_calls.append((name, value))
        function = self.activities[name]
        result = function(value)
        if asyncio.iscoroutine(result):
            result = await result
        return ActivityTriggerConverter.encode(result, expected_type=None).value


@contextlib.asynccontextmanager
async def task_hub_store(connection_string: str, hub: str | None = None
                         ) -> AsyncIterator[TaskHubStore]:
    """The task hub's tables and blobs, to look at or arrange what a host left behind."""
    store = TaskHubStore(StorageAccount(connection_string=connection_string), hub or new_hub())
    await store.create()
    try:
        yield store
    finally:
        await store.close()


def new_hub() -> str:
    return "T" + uuid.uuid4().hex[:16]


@contextlib.asynccontextmanager
async def running_engine(
    connection_string: str, functions: FunctionTable, *, task_hub: str | None = None,
    **options: Any,
) -> AsyncIterator[DurableEngine]:
    engine = DurableEngine(
        storage_account=StorageAccount(connection_string=connection_string),
        task_hub=task_hub or new_hub(),
        invoke_orchestrator=functions.invoke_orchestrator,
        invoke_activity=functions.invoke_activity,
        **options,
    )
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def wait_for(
    engine: DurableEngine, instance_id: str, states: tuple[str, ...] = TERMINAL,
    timeout: float = 20.0,
) -> InstanceStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await engine.get_instance(instance_id)
        if status is not None and status.runtime_status in states:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(
                f"instance {instance_id} did not reach {states} in {timeout} s: "
                f"{status and status.runtime_status}"
            )
        await asyncio.sleep(0.02)


def start_input(value: Any) -> str:
    """The start body the SDK's client posts: its input JSON-encoded twice."""
    return json.dumps(json.dumps(value))
