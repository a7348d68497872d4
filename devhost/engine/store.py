"""The task hub's durable state in a storage account (tables and blobs), Azure-Storage style.

Tables (all partitioned by instance id):
  <hub>Instances  one row per instance: name, status, input/output/custom status, times
  <hub>History    one row per history event of the current execution (RowKey = sequence
                  number) plus a `sentinel` row whose ETag guards every history commit
  <hub>Messages   orchestration messages not yet applied: ExecutionStarted, completions,
                  timers (visible from their fire time), raised events, terminate/suspend;
                  and the work items of activities scheduled and not yet finished (RowKey
                  `work-...`), in the same partition so that an activity's result message
                  replaces its work item in one transaction
Blobs:
  <hub>-leases/taskhub          the lease only the processing host holds
  <hub>-largemessages/<id>/...  property values too large for a table cell
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from devhost.engine.interface import StorageAccountLike

HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")
# A table string property holds 64 KiB of UTF-16: offload anything near that to a blob.
LARGE_VALUE_CHARS = 30_000
BLOB_SUFFIX = "__blob"
TRANSACTION_LIMIT = 100
SENTINEL = "sentinel"
WORK_PREFIX = "work-"


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


def history_row_key(execution_id: str, sequence: int) -> str:
    # The execution id in the key keeps a new execution's rows from overwriting the rows of
    # the one it replaces before its sentinel commit.
    return f"{execution_id}.{sequence:08X}"


@dataclass
class StoredMessage:
    instance_id: str
    key: str
    event: dict[str, Any]
    execution_id: str | None
    visible_at: datetime
    sequence: str


@dataclass
class WorkItem:
    instance_id: str
    key: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


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

    # -- large values --

    async def _pack(self, entity: dict[str, Any]) -> dict[str, Any]:
        packed: dict[str, Any] = {}
        for name, value in entity.items():
            if value is None:
                continue
            if isinstance(value, str) and len(value) > LARGE_VALUE_CHARS:
                data = value.encode("utf-8")
                # Named by content: writing the same value again stores nothing new.
                blob_name = f"{entity['PartitionKey']}/{hashlib.sha256(data).hexdigest()}"
                with contextlib.suppress(ResourceExistsError):
                    await self.large.upload_blob(blob_name, data, overwrite=False)
                packed[name + BLOB_SUFFIX] = blob_name
            else:
                packed[name] = value
        return packed

    async def _unpack(self, entity: dict[str, Any]) -> dict[str, Any]:
        unpacked = dict(entity)
        for name in [key for key in entity if key.endswith(BLOB_SUFFIX)]:
            downloader = await self.large.download_blob(entity[name])
            unpacked[name[: -len(BLOB_SUFFIX)]] = (await downloader.readall()).decode("utf-8")
            del unpacked[name]
        return unpacked

    # -- instances --

    async def read_instance(self, instance_id: str) -> dict[str, Any] | None:
        try:
            entity = await self.instances.get_entity(instance_id, "")
        except ResourceNotFoundError:
            return None
        row = await self._unpack(entity)
        row["etag"] = entity.metadata["etag"]
        return row

    async def create_or_replace_instance(
        self, entity: dict[str, Any], *, etag: str | None, must_not_exist: bool
    ) -> None:
        """Write a new instance row; `etag`/`must_not_exist` guard against a racing start."""
        packed = await self._pack(entity)
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

    async def write_instance(self, entity: dict[str, Any]) -> None:
        await self.instances.upsert_entity(await self._pack(entity), mode=UpdateMode.REPLACE)

    async def query_instances(self, query_filter: str, parameters: dict[str, Any]
                              ) -> list[dict[str, Any]]:
        pages = self.instances.query_entities(query_filter, parameters=parameters) if query_filter \
            else self.instances.list_entities()
        return [await self._unpack(entity) async for entity in pages]

    # -- history --

    async def read_history(self, instance_id: str) -> tuple[dict[str, Any] | None,
                                                              list[dict[str, Any]]]:
        """(sentinel row with its etag, events of the current execution in order)."""
        rows = [
            row async for row in self.history.query_entities(
                "PartitionKey eq @pk", parameters={"pk": instance_id}
            )
        ]
        sentinel = next((row for row in rows if row["RowKey"] == SENTINEL), None)
        if sentinel is None:
            return None, []
        length = int(sentinel.get("HistoryLength", 0))
        execution_id = sentinel.get("ExecutionId")
        events: list[dict[str, Any] | None] = [None] * length
        for row in rows:
            key = row["RowKey"]
            if key == SENTINEL or row.get("ExecutionId") != execution_id:
                continue
            sequence = int(key.rsplit(".", 1)[1], 16)
            if sequence < length:
                events[sequence] = json.loads((await self._unpack(row))["Event"])
        if any(event is None for event in events):
            raise RuntimeError(f"history of instance {instance_id!r} has gaps")
        sentinel_fields = dict(sentinel)
        sentinel_fields["etag"] = sentinel.metadata["etag"]
        return sentinel_fields, events  # type: ignore[return-value]

    async def current_execution_id(self, instance_id: str) -> str | None:
        """The execution whose history is committed (None before the first commit)."""
        try:
            sentinel = await self.history.get_entity(instance_id, SENTINEL,
                                                     select=["ExecutionId"])
        except ResourceNotFoundError:
            return None
        return sentinel.get("ExecutionId")

    async def commit_history(
        self,
        instance_id: str,
        *,
        execution_id: str,
        first_sequence: int,
        new_events: list[dict[str, Any]],
        status: dict[str, Any],
        etag: str | None,
    ) -> str:
        """Append events and move the sentinel, all-or-nothing when it fits one transaction.

        Rows beyond the sentinel's length are invisible to readers, so event rows written in
        earlier transactions (histories over 100 rows) do no harm if the final one fails.
        """
        operations: list[tuple[Any, ...]] = []
        for offset, event in enumerate(new_events):
            row = await self._pack({
                "PartitionKey": instance_id,
                "RowKey": history_row_key(execution_id, first_sequence + offset),
                "ExecutionId": execution_id,
                "EventType": event["EventType"],
                "Event": json.dumps(event),
            })
            operations.append(("upsert", row, {"mode": UpdateMode.REPLACE}))
        sentinel = await self._pack({
            "PartitionKey": instance_id, "RowKey": SENTINEL, "ExecutionId": execution_id,
            "HistoryLength": first_sequence + len(new_events), **status,
        })
        if etag is None:
            final: tuple[Any, ...] = ("create", sentinel)
        else:
            final = ("update", sentinel, {"mode": UpdateMode.REPLACE, "etag": etag,
                                          "match_condition": MatchConditions.IfNotModified})
        split = max(0, len(operations) - (TRANSACTION_LIMIT - 1))
        head, tail = operations[:split], operations[split:]
        for start in range(0, len(head), TRANSACTION_LIMIT):
            await self.history.submit_transaction(head[start:start + TRANSACTION_LIMIT])
        try:
            results = await self.history.submit_transaction([*tail, final])
            new_etag: str = results[-1]["etag"]
            return new_etag
        except HttpResponseError as error:
            if error.status_code in (404, 409, 412) or "UpdateConditionNotSatisfied" in str(error) \
                    or "EntityAlreadyExists" in str(error) or "ResourceNotFound" in str(error):
                raise ConcurrentUpdate(str(error)) from error
            raise

    async def delete_other_executions(self, instance_id: str, execution_id: str) -> None:
        """Drop history rows of executions this instance no longer has (after its commit)."""
        keys = [
            row["RowKey"] async for row in self.history.query_entities(
                "PartitionKey eq @pk", parameters={"pk": instance_id}, select=["RowKey"]
            )
            if row["RowKey"] != SENTINEL and not row["RowKey"].startswith(execution_id + ".")
        ]
        for start in range(0, len(keys), TRANSACTION_LIMIT):
            await self.history.submit_transaction([
                ("delete", {"PartitionKey": instance_id, "RowKey": key})
                for key in keys[start:start + TRANSACTION_LIMIT]
            ])

    # -- messages and work items --

    async def _message_row(self, message: StoredMessage) -> dict[str, Any]:
        return await self._pack({
            "PartitionKey": message.instance_id,
            "RowKey": message.key,
            "Event": json.dumps(message.event),
            "ExecutionId": message.execution_id or "",
            "VisibleAt": message.visible_at,
            "Sequence": message.sequence,
        })

    async def _work_row(self, item: WorkItem) -> dict[str, Any]:
        return await self._pack({
            "PartitionKey": item.instance_id, "RowKey": item.key, "ExecutionId": item.execution_id,
            "TaskId": item.task_id, "Name": item.name, "Input": item.input,
        })

    async def send_message(self, message: StoredMessage) -> None:
        await self.messages.upsert_entity(await self._message_row(message),
                                          mode=UpdateMode.REPLACE)

    async def write_outbound(
        self, instance_id: str, work_items: list[WorkItem], messages: list[StoredMessage],
    ) -> None:
        """Work items and messages of one instance, in as few transactions as fit."""
        rows = [await self._work_row(item) for item in work_items]
        rows += [await self._message_row(message) for message in messages]
        if len(rows) == 1:
            await self.messages.upsert_entity(rows[0], mode=UpdateMode.REPLACE)
            return
        for start in range(0, len(rows), TRANSACTION_LIMIT):
            await self.messages.submit_transaction([
                ("upsert", row, {"mode": UpdateMode.REPLACE})
                for row in rows[start:start + TRANSACTION_LIMIT]
            ])

    async def complete_work_items(
        self, completions: list[tuple[WorkItem, StoredMessage]],
    ) -> list[bool]:
        """Each activity's result replaces its work item atomically (results of one instance
        share transactions); False for an item that is gone (its instance was purged)."""
        if not completions:
            return []
        operations: list[tuple[Any, ...]] = []
        for item, result in completions:
            operations.append(
                ("upsert", await self._message_row(result), {"mode": UpdateMode.REPLACE})
            )
            operations.append(("delete", {"PartitionKey": item.instance_id, "RowKey": item.key}))
        if len(operations) <= TRANSACTION_LIMIT:
            try:
                await self.messages.submit_transaction(operations)
                return [True] * len(completions)
            except HttpResponseError as error:
                if len(completions) == 1 and (
                    error.status_code == 404 or "ResourceNotFound" in str(error)
                ):
                    return [False]
                if len(completions) == 1:
                    raise
        # Too many for one transaction, or one item is gone: settle them one by one.
        outcomes = []
        for pair in completions:
            outcomes += await self.complete_work_items([pair])
        return outcomes

    async def message_keys(self) -> list[tuple[str, str]]:
        """(instance id, row key) of every stored message, work items left out."""
        return [
            (row["PartitionKey"], row["RowKey"])
            async for row in self.messages.list_entities(select=["PartitionKey", "RowKey"])
            if not row["RowKey"].startswith(WORK_PREFIX)
        ]

    async def has_message(self, instance_id: str, key: str) -> bool:
        try:
            await self.messages.get_entity(instance_id, key, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    async def read_message(self, instance_id: str, key: str) -> StoredMessage | None:
        try:
            row = await self.messages.get_entity(instance_id, key)
        except ResourceNotFoundError:
            return None
        return self._stored_message(await self._unpack(row))

    @staticmethod
    def _stored_message(row: dict[str, Any]) -> StoredMessage:
        visible = row["VisibleAt"]
        return StoredMessage(
            instance_id=row["PartitionKey"], key=row["RowKey"],
            event=json.loads(row["Event"]), execution_id=row.get("ExecutionId") or None,
            visible_at=visible.astimezone(UTC) if visible.tzinfo else visible.replace(tzinfo=UTC),
            sequence=row.get("Sequence", ""),
        )

    async def all_pending(self) -> tuple[list[StoredMessage], list[WorkItem]]:
        messages: list[StoredMessage] = []
        items: list[WorkItem] = []
        async for entity in self.messages.list_entities():
            row = await self._unpack(entity)
            if row["RowKey"].startswith(WORK_PREFIX):
                items.append(WorkItem(
                    instance_id=row["PartitionKey"], key=row["RowKey"],
                    execution_id=row["ExecutionId"], task_id=int(row["TaskId"]),
                    name=row["Name"], input=row.get("Input"),
                ))
            else:
                messages.append(self._stored_message(row))
        return messages, items

    async def delete_messages(self, instance_id: str, keys: list[str]) -> None:
        if len(keys) == 1:
            with contextlib.suppress(ResourceNotFoundError):
                await self.messages.delete_entity(instance_id, keys[0])
            return
        for start in range(0, len(keys), TRANSACTION_LIMIT):
            chunk = keys[start:start + TRANSACTION_LIMIT]
            try:
                await self.messages.submit_transaction([
                    ("delete", {"PartitionKey": instance_id, "RowKey": key}) for key in chunk
                ])
            except HttpResponseError:
                # One of them is gone already: delete the rest one by one.
                for key in chunk:
                    with contextlib.suppress(ResourceNotFoundError):
                        await self.messages.delete_entity(instance_id, key)

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
        async for blob in self.large.list_blobs(name_starts_with=f"{instance_id}/"):
            await self.large.delete_blob(blob.name)
        with contextlib.suppress(ResourceNotFoundError):
            await self.instances.delete_entity(instance_id, "")
        return found
