"""What waits in the queue: counted by the depth counters, or looked up by reading rows.

    counted_depth   the sum of the counters (depth.py): a query per object, however deep
                    the queue; None until every object's count is calibrated
    look_at_rows    depth, due and retrying counts and the oldest event's time from one
                    page of at most `limit` rows (one request), or from every row
                    (`limit` None: a request per 1,000); `complete` says whether that was
                    every row
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from shared.events.depth import COUNTER_RANGE, DepthCounter
from shared.events.objects import EVENT_OBJECTS
from shared.storage.tables import safe_key

# Rows a status look reads at most: one page, one request, whatever the queue holds.
LOOK_LIMIT = 1000
EVENT_PARTITIONS = tuple(safe_key(name) for name in EVENT_OBJECTS)
# Every row but the depth counters. Spaces around every @parameter: the SDK substitutes
# whole space-separated words.
EVENT_ROWS = "RowKey lt @lo or RowKey ge @hi"


@dataclass(frozen=True)
class QueueSnapshot:
    """What waits. `complete` False: only the first rows in key order were read, so `depth`
    is a lower bound and the other figures describe those rows."""

    depth: int
    due: int
    retrying: int
    oldest_enqueued_at: datetime | None
    complete: bool = True


def counted_depth(counter: DepthCounter, partitions: tuple[str, ...]) -> int | None:
    total = 0
    for partition in partitions:
        count = counter.count(partition)
        if count is None:
            return None
        total += count
    return total


def calibrate_depth(counter: DepthCounter, partitions: tuple[str, ...]) -> bool:
    """Calibrate every object's count that can be (its partition is empty): True when
    all are calibrated."""
    return all([counter.calibrate(partition) for partition in partitions])


def look_at_rows(table: TableClient, now: datetime | None, limit: int | None) -> QueueSnapshot:
    """`now` None: count only (keys read, nothing else)."""
    select = ["RowKey"] + ([] if now is None else ["Attempts", "RetryAt", "EnqueuedAt"])
    if limit is None:
        rows: Any = table.query_entities(EVENT_ROWS, parameters=dict(COUNTER_RANGE),
                                         select=select, results_per_page=1000)
        complete = True
    else:
        # by_page() is typed a plain iterator; it is the SDK's pager, with the token.
        pages: Any = table.query_entities(EVENT_ROWS, parameters=dict(COUNTER_RANGE),
                                          select=select, results_per_page=limit).by_page()
        rows = list(next(pages, []))
        # A continuation token may also come with a last full page: then the count is
        # still a lower bound, never more than what waits.
        complete = pages.continuation_token is None
    depth = due = retrying = 0
    oldest: datetime | None = None
    for row in rows:
        depth += 1
        if now is None:
            continue
        attempts = int(row.get("Attempts") or 0)
        retrying += attempts > 0
        retry_at = row.get("RetryAt")
        due += attempts == 0 or (retry_at is not None and retry_at <= now)
        enqueued = row.get("EnqueuedAt")
        if enqueued is not None and (oldest is None or enqueued < oldest):
            oldest = enqueued
    return QueueSnapshot(depth, due, retrying, oldest, complete)
