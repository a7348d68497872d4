"""The engine's API (`DurableEngineApi`): start, read, query, command and purge instances.

Every call works on any host: it reads and writes storage, and the leading host applies
what was queued (see dispatch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from typing import Any

from devhost.engine import events as ev
from devhost.engine.activities import ActivityPool
from devhost.engine.crash_points import (
    START_AFTER_MESSAGE,
    START_BEFORE_MESSAGE,
    check_crash_setting,
    crash_point,
)
from devhost.engine.dispatch import Dispatcher
from devhost.engine.episode import EpisodeRunner
from devhost.engine.inbox import Inbox
from devhost.engine.interface import (
    BUSY_STATES,
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceStatus,
    InvokeActivity,
    InvokeOrchestrator,
    StorageAccountLike,
)
from devhost.engine.lease import TaskHubLease
from devhost.engine.messages import as_utc, queued_message, start_message, utcnow
from devhost.engine.store import ConcurrentUpdate, TaskHubStore, validate_instance_id

SETTLE_SECONDS = 5.0


class DurableEngine:
    """Implements devhost.engine.interface.DurableEngineApi over a task hub in storage."""

    def __init__(
        self,
        *,
        storage_account: StorageAccountLike,
        task_hub: str,
        invoke_orchestrator: InvokeOrchestrator,
        invoke_activity: InvokeActivity,
        max_concurrent_activities: int = 10,
        max_concurrent_orchestrators: int = 10,
        overridable_existing_instance_states: str = "NonRunningStates",
    ) -> None:
        if overridable_existing_instance_states not in ("NonRunningStates", "AnyState"):
            raise ValueError(
                "overridableExistingInstanceStates must be NonRunningStates or AnyState, not "
                f"{overridable_existing_instance_states!r}"
            )
        check_crash_setting()
        self._store = TaskHubStore(storage_account, task_hub)
        self._refuse_busy = overridable_existing_instance_states == "NonRunningStates"
        self._lease = TaskHubLease(self._store.leases)
        self._inbox = Inbox(self._store, self._lease)
        self._activities = ActivityPool(self._store, self._inbox, invoke_activity,
                                        max(1, max_concurrent_activities))
        self._episodes = EpisodeRunner(self._store, self._inbox, self._activities,
                                       invoke_orchestrator)
        self._dispatcher = Dispatcher(self._store, self._lease, self._inbox, self._activities,
                                      self._episodes, max(1, max_concurrent_orchestrators))
        self._stopped = False

    @property
    def is_leader(self) -> bool:
        return self._lease.held

    async def start(self) -> None:
        await self._store.create()
        await self._dispatcher.start()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self._dispatcher.stop()
        await self._activities.close()
        await self._store.close()

    async def start_instance(
        self, name: str, instance_id: str | None, input_json: str | None
    ) -> str:
        instance_id = instance_id or uuid.uuid4().hex
        validate_instance_id(instance_id)
        existing = await self._store.read_instance(instance_id)
        if existing is not None and existing.get("RuntimeStatus") in BUSY_STATES \
                and self._refuse_busy:
            await self._dispatcher.recover_lost_start(existing)  # the one in the way must run
            raise InstanceAlreadyExists(
                f"An Orchestration instance with the status {existing['RuntimeStatus']} "
                "already exists."
            )
        now = utcnow()
        execution_id = uuid.uuid4().hex
        row = {"PartitionKey": instance_id, "RowKey": "", "Name": name,
               "RuntimeStatus": "Pending", "Input": input_json, "CreatedTime": now,
               "LastUpdatedTime": now, "ExecutionId": execution_id}
        try:
            await self._store.create_or_replace_instance(
                row, etag=existing["etag"] if existing is not None else None,
                must_not_exist=existing is None,
            )
        except ConcurrentUpdate as error:
            raise InstanceAlreadyExists(
                f"An Orchestration instance with ID {instance_id} was started concurrently."
            ) from error
        # A crash here leaves a Pending row without its start message: the next leader's
        # start-up, its periodic sweep or the next command for the instance sends it again.
        crash_point(START_BEFORE_MESSAGE)
        await self._inbox.send(start_message(instance_id, name, input_json,
                                             execution_id=execution_id, parent=None,
                                             started_at=now))
        crash_point(START_AFTER_MESSAGE)
        return instance_id

    async def get_instance(
        self, instance_id: str, *, show_history: bool = False, show_history_output: bool = False,
        show_input: bool = True,
    ) -> InstanceStatus | None:
        row = await self._store.read_instance(instance_id)
        if row is None:
            return None
        status = _status(row, show_input=show_input)
        if show_history:
            _, history = await self._store.read_history(instance_id)
            status.history = ev.api_history(history, with_output=show_history_output,
                                            with_input=show_input)
        return status

    async def _matching_rows(
        self, runtime_status: list[str] | None, created_from: datetime | None,
        created_to: datetime | None, instance_id_prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        clauses: list[str] = []
        parameters: dict[str, Any] = {}
        if runtime_status:
            names = [f"@s{n}" for n in range(len(runtime_status))]
            clauses.append("(" + " or ".join(f"RuntimeStatus eq {n}" for n in names) + " )")
            parameters.update({n[1:]: s for n, s in zip(names, runtime_status, strict=True)})
        if created_from is not None:
            clauses.append("CreatedTime ge @created_from")
            parameters["created_from"] = as_utc(created_from)
        if created_to is not None:
            clauses.append("CreatedTime le @created_to")
            parameters["created_to"] = as_utc(created_to)
        if instance_id_prefix:
            clauses.append("PartitionKey ge @prefix_from and PartitionKey lt @prefix_to")
            parameters["prefix_from"] = instance_id_prefix
            parameters["prefix_to"] = instance_id_prefix[:-1] + chr(ord(instance_id_prefix[-1]) + 1)
        rows = await self._store.query_instances(" and ".join(clauses), parameters)
        return sorted(rows, key=lambda r: (as_utc(r.get("CreatedTime")), r["PartitionKey"]))

    async def query_instances(
        self, *, runtime_status: list[str] | None, created_from: datetime | None,
        created_to: datetime | None, instance_id_prefix: str | None, top: int | None,
        continuation_token: str | None,
    ) -> tuple[list[InstanceStatus], str | None]:
        rows = await self._matching_rows(runtime_status, created_from, created_to,
                                         instance_id_prefix)
        try:
            start = int(continuation_token) if continuation_token else 0
        except ValueError:
            start = 0
        end = len(rows) if not top or top <= 0 else start + top
        token = str(end) if end < len(rows) else None
        return [_status(row) for row in rows[start:end]], token

    async def _control(
        self, instance_id: str, event: dict[str, Any], prefix: str, *, settle: bool = False,
    ) -> None:
        """Queue a message for the instance. With `settle`, on the leading host, return once
        it is applied (or after a few seconds), so a status read next shows its effect."""
        row = await self._store.read_instance(instance_id)
        if row is None:
            raise InstanceNotFound(instance_id)
        # Queued behind a start that was lost, the command would never apply.
        await self._dispatcher.recover_lost_start(row)
        message = queued_message(instance_id, prefix, event)
        applied = self._inbox.expect_applied(message) if settle else None
        try:
            await self._inbox.send(message)
            if applied is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(applied), SETTLE_SECONDS)
        finally:
            self._inbox.stop_expecting(message)

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, ev.new_event(ev.EXECUTION_TERMINATED, utcnow(),
                                                      Input=reason), "terminate", settle=True)

    async def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None:
        await self._control(instance_id, ev.new_event(ev.EVENT_RAISED, utcnow(),
                                                      Name=event_name, Input=data_json), "event")

    async def suspend(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, ev.new_event(ev.EXECUTION_SUSPENDED, utcnow(),
                                                      Reason=reason), "suspend", settle=True)

    async def resume(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, ev.new_event(ev.EXECUTION_RESUMED, utcnow(),
                                                      Reason=reason), "resume", settle=True)

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        raise NotImplementedError("rewind is not supported by the devhost engine")

    async def purge(self, instance_id: str) -> int:
        self._episodes.forget(instance_id)
        self._inbox.forget_instance(instance_id)
        return 1 if await self._store.purge_instance(instance_id) else 0

    async def purge_many(
        self, *, created_from: datetime | None, created_to: datetime | None,
        runtime_status: list[str] | None,
    ) -> int:
        rows = await self._matching_rows(runtime_status, created_from, created_to)
        deleted = 0
        for row in rows:
            deleted += await self.purge(row["PartitionKey"])
        return deleted


def _status(row: dict[str, Any], *, show_input: bool = True) -> InstanceStatus:
    return InstanceStatus(
        name=row.get("Name", ""),
        instance_id=row["PartitionKey"],
        runtime_status=row.get("RuntimeStatus", "Pending"),
        input=row.get("Input") if show_input else None,
        output=row.get("Output"),
        custom_status=row.get("CustomStatus"),
        created_time=as_utc(row.get("CreatedTime")),
        last_updated_time=as_utc(row.get("LastUpdatedTime")),
    )
