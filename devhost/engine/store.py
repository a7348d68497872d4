"""The task hub's durable state in a storage account (tables and blobs), Azure-Storage style.

Tables (all partitioned by instance id):
  <hub>Instances  one row per instance: name, status, input/output/custom status, times
  <hub>History    the events of the current execution, a row per episode (RowKey =
                  execution id + sequence number of its first event), a `sentinel` row
                  whose ETag guards every commit, and the instance's own messages: work
                  items of activities (`work-...`; a finished activity's result takes its
                  row) and timers (`timer-...`, visible from their fire time). An episode's
                  history, the work and timers it schedules and the deletion of the results
                  and timers it applied are one transaction.
  <hub>Messages   messages from outside the instance not yet applied: ExecutionStarted,
                  raised events, terminate/suspend/resume, sub-orchestration outcomes
Blobs:
  <hub>-leases/taskhub          the lease only the processing host holds
  <hub>-largemessages/<id>/...  property values too large for a table cell (large_values.py)

Messages and work items are read and written through `TaskHubStore.queue`
(message_queue.py); this module keeps instances, history and the episode commit.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from devhost.engine.interface import StorageAccountLike
from devhost.engine.large_values import LargeValues
from devhost.engine.message_queue import MessageQueue, delete_rows
from devhost.engine.rows import (
    SENTINEL,
    TRANSACTION_LIMIT,
    StoredMessage,
    WorkItem,
    history_rows,
    is_local_key,
    message_row,
    row_events,
    work_row,
)

HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")


class ConcurrentUpdate(Exception):
    """Another writer changed the instance since it was read (ETag mismatch)."""


def validate_hub_name(task_hub: str) -> None:
    if not HUB_NAME.match(task_hub or ""):
        raise ValueError(
            f"task hub name {task_hub!r} is invalid: use 3-45 letters and digits starting "
            "with a letter (extensions.durableTask.hubName in host.json)"
        )


def validate_instance_id(instance_id: str) -> None:
    if not instance_id or any(char in instance_id for char in "/\\#?") or len(instance_id) > 256:
        raise ValueError(
            f"instance id {instance_id!r} is invalid: 1-256 characters, none of / \\ # ?"
        )


class TaskHubStore:
    def __init__(self, account: StorageAccountLike, task_hub: str) -> None:
        validate_hub_name(task_hub)
        self._credential = account.async_credential()
        self._tables: TableServiceClient = account.async_table_service(self._credential)
        self._blobs: BlobServiceClient = account.async_blob_service(self._credential)
        self.instances: TableClient = self._tables.get_table_client(f"{task_hub}Instances")
        self.history: TableClient = self._tables.get_table_client(f"{task_hub}History")
        self.messages: TableClient = self._tables.get_table_client(f"{task_hub}Messages")
        self.leases: ContainerClient = self._blobs.get_container_client(
            f"{task_hub.lower()}-leases"
        )
        self.large: ContainerClient = self._blobs.get_container_client(
            f"{task_hub.lower()}-largemessages"
        )
        self._large = LargeValues(self.large)
        self.queue = MessageQueue(self.history, self.messages, self._large)

    async def create(self) -> None:
        for table in (self.instances, self.history, self.messages):
            with contextlib.suppress(ResourceExistsError):
                await table.create_table()
        for container in (self.leases, self.large):
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()

    async def close(self) -> None:
        for client in (self.instances, self.history, self.messages):
            await client.close()
        await self.leases.close()
        await self.large.close()
        await self._tables.close()
        await self._blobs.close()
        if self._credential is not None:
            await self._credential.close()

    # -- instances --

    async def read_instance(self, instance_id: str) -> dict[str, Any] | None:
        try:
            entity = await self.instances.get_entity(instance_id, "")
        except ResourceNotFoundError:
            return None
        row = await self._large.unpack(entity)
        row["etag"] = entity.metadata["etag"]
        return row

    async def create_or_replace_instance(
        self, entity: dict[str, Any], *, etag: str | None, must_not_exist: bool
    ) -> None:
        """Write a new instance row; `etag`/`must_not_exist` guard against a racing start."""
        packed = await self._large.pack(entity)
        try:
            if must_not_exist:
                await self.instances.create_entity(packed)
            elif etag is not None:
                await self.instances.update_entity(
                    packed, mode=UpdateMode.REPLACE, etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            else:
                await self.instances.upsert_entity(packed, mode=UpdateMode.REPLACE)
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise ConcurrentUpdate(str(error)) from error

    async def write_instance(self, entity: dict[str, Any], *, etag: str | None = None) -> bool:
        """Write the row (with `etag`: only if unchanged since read; False if it changed)."""
        packed = await self._large.pack(entity)
        if etag is None:
            await self.instances.upsert_entity(packed, mode=UpdateMode.REPLACE)
            return True
        try:
            await self.instances.update_entity(packed, mode=UpdateMode.REPLACE, etag=etag,
                                               match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def query_instances(self, query_filter: str, parameters: dict[str, Any]
                              ) -> list[dict[str, Any]]:
        pages = self.instances.query_entities(query_filter, parameters=parameters) if query_filter \
            else self.instances.list_entities()
        return [{**await self._large.unpack(entity), "etag": entity.metadata["etag"]}
                async for entity in pages]

    # -- history --

    async def read_history(self, instance_id: str) -> tuple[dict[str, Any] | None,
                                                              list[dict[str, Any]]]:
        """(sentinel row with its etag, events of the current execution in order)."""
        rows = [
            row async for row in self.history.query_entities(
                "PartitionKey eq @pk", parameters={"pk": instance_id}
            )
            if not is_local_key(row["RowKey"])
        ]
        sentinel = next((row for row in rows if row["RowKey"] == SENTINEL), None)
        if sentinel is None:
            return None, []
        length = int(sentinel.get("HistoryLength", 0))
        prefix = f"{sentinel.get('ExecutionId')}."
        by_first = {int(row["RowKey"][len(prefix):], 16): row
                    for row in rows if row["RowKey"].startswith(prefix)}
        events: list[dict[str, Any]] = []
        # Rows chain from sequence 0, each starting where the one before ends: a row that a
        # failed commit left beyond the sentinel's length is never reached.
        while len(events) < length:
            row = by_first.get(len(events))
            if row is None:
                raise RuntimeError(f"history of instance {instance_id!r} has gaps")
            events += row_events(await self._large.unpack(row))
        sentinel_fields = dict(sentinel)
        sentinel_fields["etag"] = sentinel.metadata["etag"]
        return sentinel_fields, events[:length]

    async def read_sentinel(self, instance_id: str) -> dict[str, Any] | None:
        """The sentinel row: the execution whose history is committed and its status (None
        before the first commit)."""
        try:
            return await self._large.unpack(await self.history.get_entity(instance_id, SENTINEL))
        except ResourceNotFoundError:
            return None

    async def commit_episode(
        self,
        instance_id: str,
        *,
        execution_id: str,
        first_sequence: int,
        new_events: list[dict[str, Any]],
        status: dict[str, Any],
        etag: str | None,
        work_items: list[WorkItem],
        timers: list[StoredMessage],
        applied: list[str],
    ) -> tuple[str, list[str]]:
        """Store one episode, all-or-nothing when it fits one transaction: its events, the
        work items and timers it schedules, the sentinel (ETag-guarded: ConcurrentUpdate
        when another writer got there first) and the deletion of the instance's own
        messages it applied (`applied`: keys of results and timers). Returns the sentinel's
        new ETag and the applied keys still to delete.

        Over 100 rows, the new rows go first in transactions of their own (rows beyond the
        sentinel's length are invisible to readers; work items and timers of an episode that
        then fails to commit are those it schedules again, or are dropped as stale), and the
        deletions that did not fit with the sentinel are left to the caller (a crash then
        leaves messages that are recognised as applied).
        """
        writes = [await self._large.pack(work_row(item)) for item in work_items]
        writes += [await self._large.pack(message_row(timer)) for timer in timers]
        writes += [await self._large.pack(row) for row in
                   history_rows(instance_id, execution_id, first_sequence, new_events)]
        upserts: list[tuple[Any, ...]] = [("upsert", row, {"mode": UpdateMode.REPLACE})
                                          for row in writes]
        sentinel = await self._large.pack({
            "PartitionKey": instance_id, "RowKey": SENTINEL, "ExecutionId": execution_id,
            "HistoryLength": first_sequence + len(new_events), **status,
        })
        if etag is None:
            final: tuple[Any, ...] = ("create", sentinel)
        else:
            final = ("update", sentinel, {"mode": UpdateMode.REPLACE, "etag": etag,
                                          "match_condition": MatchConditions.IfNotModified})
        split = max(0, len(upserts) - (TRANSACTION_LIMIT - 1))
        for start in range(0, split, TRANSACTION_LIMIT):
            end = min(split, start + TRANSACTION_LIMIT)
            await self.history.submit_transaction(upserts[start:end])
        operations = [*upserts[split:], final]
        deletes = list(applied)
        while True:
            room = TRANSACTION_LIMIT - len(operations)
            batch = operations + [("delete", {"PartitionKey": instance_id, "RowKey": key})
                                  for key in deletes[:room]]
            try:
                results = await self.history.submit_transaction(batch)
            except TableTransactionError as error:
                failed = batch[error.index] if 0 <= error.index < len(batch) else None
                if failed is not None and failed[0] == "delete" and error.status_code == 404:
                    deletes.remove(failed[1]["RowKey"])  # gone already: nothing to undo
                    continue
                raise _concurrent_or(error) from error
            except HttpResponseError as error:
                raise _concurrent_or(error) from error
            new_etag: str = results[len(operations) - 1]["etag"]
            return new_etag, deletes[room:]

    async def delete_other_executions(self, instance_id: str, execution_id: str) -> None:
        """Drop history rows of executions this instance no longer has (after its commit)."""
        keys = [
            row["RowKey"] async for row in self.history.query_entities(
                "PartitionKey eq @pk", parameters={"pk": instance_id}, select=["RowKey"]
            )
            if row["RowKey"] != SENTINEL and not is_local_key(row["RowKey"])
            and not row["RowKey"].startswith(execution_id + ".")
        ]
        await delete_rows(self.history, instance_id, keys)

    # -- purge --

    async def purge_instance(self, instance_id: str) -> bool:
        found = await self.read_instance(instance_id) is not None
        for table in (self.history, self.messages):
            keys = [
                row["RowKey"] async for row in table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": instance_id}, select=["RowKey"]
                )
            ]
            for start in range(0, len(keys), TRANSACTION_LIMIT):
                await table.submit_transaction([
                    ("delete", {"PartitionKey": instance_id, "RowKey": key})
                    for key in keys[start:start + TRANSACTION_LIMIT]
                ])
        await self._large.delete_instance_values(instance_id)
        with contextlib.suppress(ResourceNotFoundError):
            await self.instances.delete_entity(instance_id, "")
        return found


def _concurrent_or(error: HttpResponseError) -> Exception:
    """ConcurrentUpdate for a commit refused because the sentinel moved or vanished."""
    text = str(error)
    if error.status_code in (404, 409, 412) or "UpdateConditionNotSatisfied" in text \
            or "EntityAlreadyExists" in text or "ResourceNotFound" in text:
        return ConcurrentUpdate(text)
    return error
