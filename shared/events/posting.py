"""A post's events as entity-group transactions, and the rows they meet read by key range.

Each chunk is one partition's events in RowKey order, at most `TRANSACTION_LIMIT` events
and `TRANSACTION_BYTES` of payload, so the rows a chunk may meet lie in one narrow key
range: one query (a page per 1,000 rows) reads them all, where a read per event took a
request each. A range holding many more rows than the chunk has events (sparse ids among
a deep queue) is not read to its end: the keys beyond the rows read are looked up one by
one instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from azure.data.tables import TableClient

from shared.events.depth import is_counter_row
from shared.events.validation import Event
from shared.storage.tables import StoredEntity, read_entity, safe_key

# Event rows in one entity-group transaction (100 operations) beside its depth count.
TRANSACTION_LIMIT = 99
# Payload bytes per transaction as sent: the SDK writes each payload as a JSON string with
# every non-ASCII character escaped (`é` is six bytes), and a transaction takes 4 MiB.
TRANSACTION_BYTES = 3_000_000
# Rows a range read may pass per key it looks for before the rest are read one by one.
RANGE_ROWS_PER_KEY = 4
# Fields the decision needs: the version (the ETag comes with every row).
_DECISION_FIELDS = ["RowKey", "Version"]
_RANGE = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"


def table_order(key: str) -> bytes:
    """A key as the table orders keys: by UTF-16 code unit (a character beyond U+FFFF sorts
    before U+E000..U+FFFF, unlike in Python's order)."""
    return key.encode("utf-16-be", "surrogatepass")


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
    wanted = sorted(set(row_keys), key=table_order)
    if not wanted:
        return {}
    found: dict[str, StoredEntity] = {}
    budget = RANGE_ROWS_PER_KEY * len(wanted)
    rows = table.query_entities(_RANGE, parameters={"pk": partition, "lo": wanted[0],
                                                    "hi": wanted[-1]},
                                select=_DECISION_FIELDS, results_per_page=min(budget, 1000))
    passed = ""  # every wanted key up to here is settled: found, or not stored
    for number, row in enumerate(rows, start=1):
        key = row["RowKey"]
        etag = row.metadata["etag"]
        if not is_counter_row(key) and etag is not None:  # the service sends every ETag
            found[key] = StoredEntity(dict(row), etag)
        passed = key
        if number >= budget:
            break
    else:
        passed = wanted[-1]
    rest = [key for key in wanted if table_order(key) > table_order(passed)]
    for key, entity in zip(rest, pool.map(lambda key: read_entity(table, partition, key),
                                          rest), strict=True):
        if entity is not None:
            found[key] = entity
    return {key: found[key] for key in wanted if key in found}
