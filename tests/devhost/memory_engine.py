"""A small in-memory stand-in for `devhost.engine`, to test the host shell on its own.

It honours the engine interface (devhost_interface: start/get/query/terminate/raise_event/
suspend/resume/purge) and replays orchestrators through the real SDK entry point with the
JSON history protocol, but only understands activity calls and external events. The
end-to-end tests run the real engine on Azurite; this one isolates the shell's HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from devhost.engine import interface
from devhost.engine.events import api_history
from devhost.engine.interface import BUSY_STATES as BUSY
from devhost.engine.interface import InstanceAlreadyExists, InstanceNotFound
from devhost.engine.store import validate_instance_id


@dataclass
class InstanceStatus(interface.InstanceStatus):
    """The engine's status, plus the external events this engine keeps beside it."""

    events: list[dict] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DurableEngine:
    def __init__(
        self,
        *,
        storage_account: object,
        task_hub: str,
        invoke_orchestrator: Callable[[str, str], Awaitable[str]],
        invoke_activity: Callable[[str, str | None], Awaitable[str | None]],
        max_concurrent_activities: int = 10,
        max_concurrent_orchestrators: int = 10,
        overridable_existing_instance_states: str = "NonRunningStates",
    ) -> None:
        self.task_hub = task_hub
        self._invoke_orchestrator = invoke_orchestrator
        self._invoke_activity = invoke_activity
        self._refuse_busy = overridable_existing_instance_states == "NonRunningStates"
        self._instances: dict[str, InstanceStatus] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _spawn(self, instance_id: str) -> None:
        task = asyncio.create_task(self._replay(instance_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start_instance(
        self, name: str, instance_id: str | None, input_json: str | None
    ) -> str:
        instance_id = instance_id or uuid.uuid4().hex
        validate_instance_id(instance_id)
        existing = self._instances.get(instance_id)
        if existing is not None and self._refuse_busy and existing.runtime_status in BUSY:
            raise InstanceAlreadyExists(
                f"An Orchestration instance with the status {existing.runtime_status} "
                f"already exists with ID {instance_id}."
            )
        now = datetime.now(UTC)
        self._instances[instance_id] = InstanceStatus(
            name, instance_id, "Pending", input_json, None, None, now, now,
            events=[
                {"EventType": 12, "EventId": -1, "IsPlayed": False, "Timestamp": _now()},
                {"EventType": 0, "EventId": -1, "IsPlayed": False, "Timestamp": _now(),
                 "Name": name, "Version": "", "Input": input_json},
            ],
        )
        self._spawn(instance_id)
        return instance_id

    async def _replay(self, instance_id: str) -> None:
        lock = self._locks.setdefault(instance_id, asyncio.Lock())
        async with lock:
            status = self._instances.get(instance_id)
            if status is None or status.runtime_status not in ("Pending", "Running"):
                return
            context = {
                "history": status.events, "instanceId": instance_id, "isReplaying": False,
                "parentInstanceId": None,
                # The stored input is the client's JSON text; the context carries its value.
                "input": json.loads(status.input) if status.input else None,
            }
            answer = json.loads(await self._invoke_orchestrator(status.name, json.dumps(context)))
            status.runtime_status = "Running"
            status.last_updated_time = datetime.now(UTC)
            if answer.get("customStatus") is not None:
                status.custom_status = json.dumps(answer["customStatus"])
            if answer.get("isDone") or answer.get("error") is not None:
                failed = answer.get("error") is not None
                status.runtime_status = "Failed" if failed else "Completed"
                status.output = json.dumps(answer.get("error") if failed else answer.get("output"))
                return
            scheduled = {e["EventId"] for e in status.events if e["EventType"] == 4}
            actions = [a for group in answer.get("actions", []) for a in group]
            for number, action in enumerate(actions):
                if action["actionType"] == 0 and number not in scheduled:
                    status.events.append({"EventType": 4, "EventId": number, "IsPlayed": False,
                                          "Timestamp": _now(), "Name": action["functionName"],
                                          "Input": action.get("input")})
                    task = asyncio.create_task(
                        self._run_activity(instance_id, number, action)
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _run_activity(self, instance_id: str, number: int, action: dict) -> None:
        try:
            interface.INVOKING_INSTANCE.set(instance_id)
            result = await self._invoke_activity(action["functionName"], action.get("input"))
            event = {"EventType": 5, "EventId": -1, "TaskScheduledId": number, "Result": result}
        except Exception as error:
            event = {"EventType": 6, "EventId": -1, "TaskScheduledId": number,
                     "Reason": str(error), "Details": type(error).__name__}
        self._append(instance_id, event)

    def _append(self, instance_id: str, event: dict) -> None:
        status = self._instances[instance_id]
        status.events.append({"IsPlayed": False, "Timestamp": _now(), **event})
        status.events.append(
            {"EventType": 12, "EventId": -1, "IsPlayed": False, "Timestamp": _now()}
        )
        self._spawn(instance_id)

    async def get_instance(self, instance_id: str, *, show_history: bool = False,
                           show_history_output: bool = False, show_input: bool = True):
        status = self._instances.get(instance_id)
        if status is None:
            return None
        history = (api_history(status.events, with_output=show_history_output,
                               with_input=show_input) if show_history else None)
        return replace(status, input=status.input if show_input else None, history=history)

    async def query_instances(self, *, runtime_status, created_from, created_to,
                              instance_id_prefix, top, continuation_token):
        matches = [
            s
            for s in sorted(
                self._instances.values(), key=lambda s: (s.created_time, s.instance_id)
            )
            if (not runtime_status or s.runtime_status in runtime_status)
            and (created_from is None or s.created_time >= created_from)
            and (created_to is None or s.created_time <= created_to)
            and (not instance_id_prefix or s.instance_id.startswith(instance_id_prefix))
        ]
        start = int(continuation_token or 0)
        end = len(matches) if top is None else start + top
        token = str(end) if end < len(matches) else None
        return [replace(s) for s in matches[start:end]], token

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        status = self._instances[instance_id]
        status.runtime_status = "Terminated"
        status.output = json.dumps(reason)

    async def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None:
        if instance_id not in self._instances:
            raise InstanceNotFound(instance_id)
        self._append(instance_id, {"EventType": 15, "EventId": -1, "Name": event_name,
                                   "Input": data_json})

    async def suspend(self, instance_id: str, reason: str | None) -> None:
        self._instances[instance_id].runtime_status = "Suspended"

    async def resume(self, instance_id: str, reason: str | None) -> None:
        self._instances[instance_id].runtime_status = "Running"
        self._spawn(instance_id)

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        raise NotImplementedError("the in-memory engine cannot rewind")

    async def purge(self, instance_id: str) -> int:
        return 1 if self._instances.pop(instance_id, None) else 0

    async def purge_many(self, *, created_from, created_to, runtime_status) -> int:
        doomed = [
            s.instance_id for s in self._instances.values()
            if s.created_time >= created_from and s.created_time <= created_to
            and (not runtime_status or s.runtime_status in runtime_status)
        ]
        for instance_id in doomed:
            del self._instances[instance_id]
        return len(doomed)

