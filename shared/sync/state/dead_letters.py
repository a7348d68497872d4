"""The dead-letter table: records the sink or the mapping rejected, one row per record
change (key + cursor), so a replayed page rewrites its rows and never adds any; and the
rows no page reads (a NULL key or cursor, shared/sync/null_rows.py), told apart by a
digest of their values where the key cannot tell them apart."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableClient

from shared.storage.tables import safe_key
from shared.sync.state.tables import MAX_TEXT, utc_now


def jsonable_record(values: dict[str, Any]) -> dict[str, Any]:
    """A rejected record or row as a dead letter keeps it: JSON's own values as they are,
    any other (a date, a decimal) as its text."""
    return {key: value if isinstance(value, int | float | str | bool) or value is None
            else str(value) for key, value in values.items()}


@dataclass(frozen=True)
class DeadLetter:
    record_key: str
    cursor: str | None
    code: str
    message: str
    record: dict[str, Any] | None = None
    # Added to the row key: tells apart rows whose key and cursor are alike (NULL keys).
    row_digest: str = ""


class DeadLetters:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def add(self, job: str, run_id: str, letters: list[DeadLetter]) -> None:
        at = utc_now().isoformat()
        for letter in letters:
            record_text = (
                json.dumps(letter.record, default=str)[:MAX_TEXT] if letter.record else ""
            )
            self.table.upsert_entity({
                "PartitionKey": job,
                "RowKey": safe_key(f"{letter.record_key}|{letter.cursor or ''}"
                                   + (f"|{letter.row_digest}" if letter.row_digest else "")),
                "RecordKey": letter.record_key,
                "Cursor": letter.cursor or "",
                "ErrorCode": letter.code[:256],
                "ErrorMessage": letter.message[:MAX_TEXT],
                "Record": record_text,
                "RunId": run_id,
                "At": at,
            })

    def rows(self, job: str) -> list[dict[str, Any]]:
        return list(self.table.query_entities("PartitionKey eq @job", parameters={"job": job}))
