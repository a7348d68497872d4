"""A post's events as entity-group transactions, and the rows they meet read by key range.

Each chunk is one partition's events in RowKey order, at most `TRANSACTION_LIMIT` events
and `TRANSACTION_BYTES` of payload, so the rows a chunk may meet lie in one narrow key
range: one query (a page per 1,000 rows) reads them all, where a read per event took a
request each (shared/storage/key_ranges.py: a sparse range is read in part, the keys
beyond one by one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from azure.data.tables import TableClient

from shared.events.depth import is_counter_row
from shared.events.validation import Event
from shared.storage.key_ranges import read_rows_by_range, table_order
from shared.storage.tables import StoredEntity, safe_key

# Event rows in one entity-group transaction (100 operations) beside its depth count.
TRANSACTION_LIMIT = 99
# Payload bytes per transaction as sent: the SDK writes each payload as a JSON string with
# every non-ASCII character escaped (`é` is six bytes), and a transaction takes 4 MiB.
TRANSACTION_BYTES = 3_000_000
# Fields the decision needs: the version (the ETag comes with every row).
_DECISION_FIELDS = ["RowKey", "Version"]


def transaction_chunks(events: Sequence[Event]) -> Iterator[list[Event]]:
    """The events by partition in RowKey order, at most TRANSACTION_LIMIT events and
    TRANSACTION_BYTES of payload a chunk. The events are collapsed (one per key), so no
    two chunks touch the same row and their order does not matter."""
    by_partition: dict[str, list[Event]] = {}
    for event in events:
        by_partition.setdefault(safe_key(event.object), []).append(event)
    for partition in by_partition.values():
        chunk: list[Event] = []
        chars = 0
        for event in sorted(partition, key=lambda event: table_order(safe_key(event.id))):
            size = len(json.dumps(event.payload)) if event.payload else 0
            if chunk and (len(chunk) == TRANSACTION_LIMIT or chars + size > TRANSACTION_BYTES):
                yield chunk
                chunk, chars = [], 0
            chunk.append(event)
            chars += size
        if chunk:
            yield chunk


def read_waiting_rows(table: TableClient, partition: str, row_keys: Sequence[str],
                      pool: ThreadPoolExecutor) -> dict[str, StoredEntity]:
    """The stored rows of `row_keys` (in `partition`) by key; a key absent is not stored.
    Each row is as it was when read: a write after the read fails its ETag condition."""
    return read_rows_by_range(table, partition, row_keys, _DECISION_FIELDS, pool,
                              skip=is_counter_row)
