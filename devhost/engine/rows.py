"""What the task hub's rows hold: row keys, and messages, work items and an episode's
history events as table rows and back (store.py reads and writes them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# A table string property holds 64 KiB of UTF-16: offload anything near that to a blob.
LARGE_VALUE_CHARS = 30_000
TRANSACTION_LIMIT = 100  # operations in one table transaction
SENTINEL = "sentinel"
WORK_PREFIX = "work-"
RESULT_PREFIX = "task-"  # results stored apart from their work item (task hubs before)
TIMER_PREFIX = "timer-"
# Rows an instance writes for itself live beside its history, so that they commit with it.
LOCAL_PREFIXES = (WORK_PREFIX, RESULT_PREFIX, TIMER_PREFIX)


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


def is_local_key(key: str) -> bool:
    """Whether a message row lives in the History table (the instance's own work, results
    and timers) rather than in Messages (what clients and other instances send)."""
    return key.startswith(LOCAL_PREFIXES)


def history_row_key(execution_id: str, sequence: int) -> str:
    # The execution id in the key keeps a new execution's rows from overwriting the rows of
    # the one it replaces before its sentinel commit.
    return f"{execution_id}.{sequence:08X}"


def message_row(message: StoredMessage) -> dict[str, Any]:
    return {
        "PartitionKey": message.instance_id,
        "RowKey": message.key,
        "Event": json.dumps(message.event),
        "ExecutionId": message.execution_id or "",
        "VisibleAt": message.visible_at,
        "Sequence": message.sequence,
    }


def stored_message(row: dict[str, Any]) -> StoredMessage:
    visible = row["VisibleAt"]
    return StoredMessage(
        instance_id=row["PartitionKey"], key=row["RowKey"],
        event=json.loads(row["Event"]), execution_id=row.get("ExecutionId") or None,
        visible_at=visible.astimezone(UTC) if visible.tzinfo else visible.replace(tzinfo=UTC),
        sequence=row.get("Sequence", ""),
    )


def work_row(item: WorkItem) -> dict[str, Any]:
    return {
        "PartitionKey": item.instance_id, "RowKey": item.key, "ExecutionId": item.execution_id,
        "TaskId": item.task_id, "Name": item.name, "Input": item.input,
    }


def work_item(row: dict[str, Any]) -> WorkItem:
    return WorkItem(
        instance_id=row["PartitionKey"], key=row["RowKey"], execution_id=row["ExecutionId"],
        task_id=int(row["TaskId"]), name=row["Name"], input=row.get("Input"),
    )


def history_rows(
    instance_id: str, execution_id: str, first_sequence: int, events: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """An episode's events as few rows as fit a table cell each (one usually); a row's key
    is the sequence number of its first event."""
    rows: list[dict[str, Any]] = []
    chunk: list[str] = []
    size = 0
    first = first_sequence
    for event in events:
        text = json.dumps(event)
        if chunk and size + len(text) > LARGE_VALUE_CHARS:
            rows.append(_history_row(instance_id, execution_id, first, chunk))
            first += len(chunk)
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        rows.append(_history_row(instance_id, execution_id, first, chunk))
    return rows


def _history_row(
    instance_id: str, execution_id: str, first: int, events: list[str],
) -> dict[str, Any]:
    return {"PartitionKey": instance_id, "RowKey": history_row_key(execution_id, first),
            "ExecutionId": execution_id, "Events": "[" + ",".join(events) + "]"}


def row_events(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A history row's events: an episode's, or the one event of a row written before
    episodes were stored a row each."""
    if "Events" in row:
        events: list[dict[str, Any]] = json.loads(row["Events"])
        return events
    return [json.loads(row["Event"])]
