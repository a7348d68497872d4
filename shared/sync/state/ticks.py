"""The row `ticks` of each job: how many timer ticks started a run, were skipped (busy,
held, disabled) or terminated a stuck run, and the last one."""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from shared.storage.tables import ConcurrentWrite, RowAsRead, read_entity, write_entity
from shared.sync.state.tables import utc_now

log = logging.getLogger(__name__)

TICKS_ROW = "ticks"


class TickCounters:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def count(self, job: str, outcome: str, now: datetime | None = None,
              seen: RowAsRead | None = None) -> None:
        """Add one to the counter of `outcome` (started, skipped_busy, ...); best effort.
        `seen`: the row as the caller read it, tried first instead of reading it again."""
        column = "".join(part.capitalize() for part in outcome.split("_"))
        for attempt in range(50):
            stored = seen.entity if seen is not None else read_entity(self.table, job, TICKS_ROW)
            seen = None
            values: dict[str, Any] = (
                dict(stored.values) if stored else {"PartitionKey": job, "RowKey": TICKS_ROW})
            values[column] = int(values.get(column, 0)) + 1
            values["LastTick"] = (now or utc_now()).isoformat()
            values["LastOutcome"] = outcome
            try:
                write_entity(self.table, values, stored.etag if stored else None)
                return
            except ConcurrentWrite:
                # Jittered backoff: ticks that collided once should not collide again.
                time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 10)))  # noqa: S311
        log.warning("job %s: tick counter %s not updated: too many concurrent writers",
                    job, column)

    def read(self, job: str) -> dict[str, Any]:
        stored = read_entity(self.table, job, TICKS_ROW)
        if stored is None:
            return {}
        return {
            key: value for key, value in stored.values.items()
            if key not in {"PartitionKey", "RowKey"}
        }
