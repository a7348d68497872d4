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
  <hub>-largemessages/<id>/...  property values too large for a table cell
"""

from __future__ import annotations

import contextlib
import hashlib
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
from devhost.engine.rows import (
    LARGE_VALUE_CHARS,
    LOCAL_PREFIXES,
    SENTINEL,
    WORK_PREFIX,
    StoredMessage,
    WorkItem,
    history_rows,
    is_local_key,
    message_row,
    row_events,
    stored_message,
    work_item,
    work_row,
)

HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")
BLOB_SUFFIX = "__blob"
TRANSACTION_LIMIT = 100


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

    async def write_instance(self, entity: dict[str, Any], *, etag: str | None = None) -> bool:
        """Write the row (with `etag`: only if unchanged since read; False if it changed)."""
        packed = await self._pack(entity)
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
        return [{**await self._unpack(entity), "etag": entity.metadata["etag"]}
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
            events += row_events(await self._unpack(row))
        sentinel_fields = dict(sentinel)
        sentinel_fields["etag"] = sentinel.metadata["etag"]
        return sentinel_fields, events[:length]

    async def read_sentinel(self, instance_id: str) -> dict[str, Any] | None:
        """The sentinel row: the execution whose history is committed and its status (None
        before the first commit)."""
        try:
            return await self._unpack(await self.history.get_entity(instance_id, SENTINEL))
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
        writes = [await self._work_row(item) for item in work_items]
        writes += [await self._message_row(timer) for timer in timers]
        writes += [await self._pack(row) for row in
                   history_rows(instance_id, execution_id, first_sequence, new_events)]
        upserts: list[tuple[Any, ...]] = [("upsert", row, {"mode": UpdateMode.REPLACE})
                                          for row in writes]
        sentinel = await self._pack({
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
        await self._delete_rows(self.history, instance_id, keys)

    # -- messages and work items --

    def _table_of(self, key: str) -> TableClient:
        return self.history if is_local_key(key) else self.messages

    async def _message_row(self, message: StoredMessage) -> dict[str, Any]:
        return await self._pack(message_row(message))

    async def _work_row(self, item: WorkItem) -> dict[str, Any]:
        return await self._pack(work_row(item))

    async def send_message(self, message: StoredMessage) -> None:
        await self._table_of(message.key).upsert_entity(await self._message_row(message),
                                                        mode=UpdateMode.REPLACE)

    async def complete_work_items(
        self, completions: list[tuple[WorkItem, StoredMessage]],
    ) -> list[StoredMessage | None]:
        """Each activity's result takes its work item's row (same key) in one update that
        needs the row to be there; results of one instance share transactions. None for an
        item whose row is gone (its instance was purged, or a result another host stored
        there was applied already)."""
        outcomes: dict[str, StoredMessage | None] = {}
        if len(completions) == 1:
            _, result = completions[0]
            try:
                await self.history.update_entity(await self._message_row(result),
                                                 mode=UpdateMode.REPLACE)
            except ResourceNotFoundError:
                return [None]
            return [result]
        for start in range(0, len(completions), TRANSACTION_LIMIT):
            results = [result for _, result in completions[start:start + TRANSACTION_LIMIT]]
            while results:
                try:
                    await self.history.submit_transaction([
                        ("update", await self._message_row(result), {"mode": UpdateMode.REPLACE})
                        for result in results
                    ])
                except TableTransactionError as error:
                    if error.status_code != 404 or not 0 <= error.index < len(results):
                        raise
                    outcomes[results.pop(error.index).key] = None
                    continue
                outcomes.update((result.key, result) for result in results)
                break
        return [outcomes[result.key] for _, result in completions]

    async def message_keys(self) -> list[tuple[str, str]]:
        """(instance id, row key) of every message other hosts may have sent (the
        Messages table: clients' and other instances' messages)."""
        return [
            (row["PartitionKey"], row["RowKey"])
            async for row in self.messages.list_entities(select=["PartitionKey", "RowKey"])
            if not is_local_key(row["RowKey"])
        ]

    async def has_message(self, instance_id: str, key: str) -> bool:
        try:
            await self._table_of(key).get_entity(instance_id, key, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    async def read_message(self, instance_id: str, key: str) -> StoredMessage | None:
        try:
            row = await self._table_of(key).get_entity(instance_id, key)
        except ResourceNotFoundError:
            return None
        return stored_message(await self._unpack(row))

    async def all_pending(self) -> tuple[list[StoredMessage], list[WorkItem]]:
        """Every message and work item not yet applied (what a new leader loads)."""
        entities: dict[tuple[str, str], dict[str, Any]] = {}
        async for entity in self.messages.list_entities():
            if is_local_key(entity["RowKey"]):
                # Written before the instance's own messages moved beside its history.
                await self.history.upsert_entity(dict(entity), mode=UpdateMode.REPLACE)
                with contextlib.suppress(ResourceNotFoundError):
                    await self.messages.delete_entity(entity["PartitionKey"], entity["RowKey"])
            entities[(entity["PartitionKey"], entity["RowKey"])] = entity
        local = " or ".join(f"(RowKey ge '{prefix}' and RowKey lt '{prefix[:-1]}.')"
                            for prefix in LOCAL_PREFIXES)
        async for entity in self.history.query_entities(local):
            entities[(entity["PartitionKey"], entity["RowKey"])] = entity
        messages: list[StoredMessage] = []
        items: list[WorkItem] = []
        for stored in entities.values():
            row = await self._unpack(stored)
            if row["RowKey"].startswith(WORK_PREFIX) and "Event" not in row:
                items.append(work_item(row))
            else:
                messages.append(stored_message(row))
        return messages, items

    async def delete_messages(self, instance_id: str, keys: list[str]) -> None:
        await self._delete_rows(self.history, instance_id, [k for k in keys if is_local_key(k)])
        await self._delete_rows(self.messages, instance_id,
                                [k for k in keys if not is_local_key(k)])

    @staticmethod
    async def _delete_rows(table: TableClient, instance_id: str, keys: list[str]) -> None:
        if len(keys) == 1:
            with contextlib.suppress(ResourceNotFoundError):
                await table.delete_entity(instance_id, keys[0])
            return
        for start in range(0, len(keys), TRANSACTION_LIMIT):
            chunk = keys[start:start + TRANSACTION_LIMIT]
            try:
                await table.submit_transaction([
                    ("delete", {"PartitionKey": instance_id, "RowKey": key}) for key in chunk
                ])
            except HttpResponseError:
                # One of them is gone already: delete the rest one by one.
                for key in chunk:
                    with contextlib.suppress(ResourceNotFoundError):
                        await table.delete_entity(instance_id, key)

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


def _concurrent_or(error: HttpResponseError) -> Exception:
    """ConcurrentUpdate for a commit refused because the sentinel moved or vanished."""
    text = str(error)
    if error.status_code in (404, 409, 412) or "UpdateConditionNotSatisfied" in text \
            or "EntityAlreadyExists" in text or "ResourceNotFound" in text:
        return ConcurrentUpdate(text)
    return error
