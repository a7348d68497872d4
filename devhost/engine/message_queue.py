"""The task hub's queues as table rows: messages not yet applied and activity work items.

An instance's own messages (work items, their results, timers) live in its History
partition, so that an episode's commit writes and deletes them in its transaction; messages
from outside the instance (starts, raised events, commands, sub-orchestration outcomes) live
in the Messages table. A row key says which (`rows.is_local_key`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from devhost.engine.large_values import LargeValues
from devhost.engine.rows import (
    LOCAL_PREFIXES,
    TRANSACTION_LIMIT,
    WORK_PREFIX,
    StoredMessage,
    WorkItem,
    is_local_key,
    message_row,
    stored_message,
    work_item,
)


class MessageQueue:
    def __init__(self, history: TableClient, messages: TableClient,
                 large: LargeValues) -> None:
        self._history = history
        self._messages = messages
        self._large = large

    def _table_of(self, key: str) -> TableClient:
        return self._history if is_local_key(key) else self._messages

    async def _message_row(self, message: StoredMessage) -> dict[str, Any]:
        return await self._large.pack(message_row(message))

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
                await self._history.update_entity(await self._message_row(result),
                                                  mode=UpdateMode.REPLACE)
            except ResourceNotFoundError:
                return [None]
            return [result]
        for start in range(0, len(completions), TRANSACTION_LIMIT):
            results = [result for _, result in completions[start:start + TRANSACTION_LIMIT]]
            while results:
                try:
                    await self._history.submit_transaction([
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
            async for row in self._messages.list_entities(select=["PartitionKey", "RowKey"])
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
        return stored_message(await self._large.unpack(row))

    async def all_pending(self) -> tuple[list[StoredMessage], list[WorkItem]]:
        """Every message and work item not yet applied (what a new leader loads)."""
        entities: dict[tuple[str, str], dict[str, Any]] = {}
        async for entity in self._messages.list_entities():
            if is_local_key(entity["RowKey"]):
                # Written before the instance's own messages moved beside its history.
                await self._history.upsert_entity(dict(entity), mode=UpdateMode.REPLACE)
                with contextlib.suppress(ResourceNotFoundError):
                    await self._messages.delete_entity(entity["PartitionKey"], entity["RowKey"])
            entities[(entity["PartitionKey"], entity["RowKey"])] = entity
        local = " or ".join(f"(RowKey ge '{prefix}' and RowKey lt '{prefix[:-1]}.')"
                            for prefix in LOCAL_PREFIXES)
        async for entity in self._history.query_entities(local):
            entities[(entity["PartitionKey"], entity["RowKey"])] = entity
        messages: list[StoredMessage] = []
        items: list[WorkItem] = []
        for stored in entities.values():
            row = await self._large.unpack(stored)
            if row["RowKey"].startswith(WORK_PREFIX) and "Event" not in row:
                items.append(work_item(row))
            else:
                messages.append(stored_message(row))
        return messages, items

    async def delete_messages(self, instance_id: str, keys: list[str]) -> None:
        await delete_rows(self._history, instance_id, [k for k in keys if is_local_key(k)])
        await delete_rows(self._messages, instance_id,
                          [k for k in keys if not is_local_key(k)])


async def delete_rows(table: TableClient, instance_id: str, keys: list[str]) -> None:
    """Delete rows of one partition; a row gone already is no error."""
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
