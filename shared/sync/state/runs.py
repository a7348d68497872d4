"""The runs table: one row per run of a job (start, end, pages, rows, outcome, error),
newest first in its partition."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from shared.storage.tables import ConcurrentWrite, read_entity, replace_if_unchanged, safe_key
from shared.sync.state.tables import MAX_TEXT


def run_row_key(started_at: datetime, run_id: str) -> str:
    # Newest first in the partition's natural order.
    inverted = 10**13 - int(started_at.timestamp() * 1000)
    return f"{inverted:013d}-{safe_key(run_id)}"


class RunLog:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def record(self, job: str, run_id: str, started_at: datetime, **fields: Any) -> None:
        """Create or merge the run's row (outcome, counts, error, ...)."""
        entity = {
            "PartitionKey": job,
            "RowKey": run_row_key(started_at, run_id),
            "RunId": run_id,
            "StartedAt": started_at.isoformat(),
        }
        for name, value in fields.items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, str):
                value = value[:MAX_TEXT]
            entity[name] = value
        self.table.upsert_entity(entity)

    def close_open(
        self, job: str, run_id: str, started_at: datetime, outcome: str, ended_at: datetime,
        error: str,
    ) -> bool:
        """End a run whose row still says running (its instance ended without recording it,
        e.g. terminated through the Durable API). True when this call closed it."""
        stored = read_entity(self.table, job, run_row_key(started_at, run_id))
        if stored is None or stored.values.get("Outcome") != "running":
            return False
        row = {**stored.values, "Outcome": outcome, "EndedAt": ended_at.isoformat(),
               "Error": error[:MAX_TEXT]}
        try:
            replace_if_unchanged(self.table, row, stored.etag)
        except ConcurrentWrite:  # the run itself, or another tick, wrote it meanwhile
            return False
        return True

    def last(self, job: str, count: int = 10) -> list[dict[str, Any]]:
        rows = self.table.query_entities(
            "PartitionKey eq @job", parameters={"job": job}, results_per_page=count
        )
        result = []
        for row in rows:
            result.append({
                key: value for key, value in row.items()
                if key not in {"PartitionKey", "RowKey"}
            })
            if len(result) >= count:
                break
        return result
