"""The queue table's rows, as the queue (queue.py) writes and reads them.

Rows: PartitionKey = object, RowKey = id (escaped), `Object`, `RecordId`, `Operation`,
`Version` (text, or absent), `Payload`, `Attempts`, `EnqueuedAt`, `RetryAt`,
`LastErrorCode`, `LastError`. A dead letter's RowKey is the id and its event's ETag.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from azure.core import MatchConditions

from shared.events.messages import EventRef
from shared.events.validation import Event, Operation
from shared.storage.tables import safe_key


def event_entity(event: Event, now: datetime) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": safe_key(event.object), "RowKey": safe_key(event.id),
        "Object": event.object, "RecordId": event.id, "Operation": event.operation.value,
        "Attempts": 0, "EnqueuedAt": now, "RetryAt": now,
    }
    if event.version is not None:
        # As text: Table Storage's Int64 comes back wrapped, and versions are only compared.
        entity["Version"] = str(event.version)
    if event.payload is not None:
        entity["Payload"] = event.payload
    return entity


def dead_letter_key(record_id: str, etag: str) -> str:
    """A dead letter's RowKey: the record's id and the ETag of the event that failed."""
    return f"{safe_key(record_id)}.{hashlib.sha256(etag.encode()).hexdigest()[:16]}"


def is_rescheduled(values: dict[str, Any], change: dict[str, Any]) -> bool:
    """Whether a row holds exactly the retry `change` writes: an earlier try of the same
    settle wrote it (a newer event is stored with Attempts 0)."""
    return bool(int(values.get("Attempts") or 0) == change["Attempts"]
                and values.get("RetryAt") == change["RetryAt"]
                and values.get("LastErrorCode") == change["LastErrorCode"])


def delete_if_unchanged(ref: EventRef) -> tuple[Any, ...]:
    """A transaction's operation removing the event's row unless it changed since taken."""
    return ("delete", {"PartitionKey": safe_key(ref.object), "RowKey": safe_key(ref.id)},
            {"etag": ref.etag, "match_condition": MatchConditions.IfNotModified})


def version_of(values: dict[str, Any]) -> int | None:
    text = values.get("Version")
    return None if text in (None, "") else int(text)


def ref_of(row: Any) -> EventRef:
    """The reference the drain takes a row by (its ETag among them)."""
    return EventRef(object=row["Object"], id=row["RecordId"],
                    operation=Operation(row["Operation"]), version=version_of(row),
                    attempts=int(row.get("Attempts") or 0), etag=row.metadata["etag"])
