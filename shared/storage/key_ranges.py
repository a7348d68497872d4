"""Rows of one partition read by key range: one query where a read per key took a request
each.

The keys looked for are sorted as the table orders keys (by UTF-16 code unit,
`table_order`) and the rows from the first to the last are read in one query (a page per
1,000 rows). A range holding many more rows than keys are looked for (sparse keys among
many rows) is not read to its end: the keys beyond the rows read are looked up one by one
instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from azure.data.tables import TableClient

from shared.storage.tables import StoredEntity, read_entity

# Rows a range read may pass per key it looks for before the rest are read one by one.
RANGE_ROWS_PER_KEY = 4
_RANGE = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"


def table_order(key: str) -> bytes:
    """A key as the table orders keys: by UTF-16 code unit (a character beyond U+FFFF sorts
    before U+E000..U+FFFF, unlike in Python's order)."""
    return key.encode("utf-16-be", "surrogatepass")


def read_rows_by_range(table: TableClient, partition: str, row_keys: Sequence[str],
                       select: list[str], pool: ThreadPoolExecutor,
                       skip: Callable[[str], bool] | None = None) -> dict[str, StoredEntity]:
    """The stored rows of `row_keys` (in `partition`) by key, with the `select` fields
    (RowKey among them) and their ETags; a key absent is not stored. `skip`: keys of rows
    in the range that are never one of the keys (another kind of row sharing the
    partition). Each row is as it was when read: a write after the read fails its ETag
    condition."""
    wanted = sorted(set(row_keys), key=table_order)
    if not wanted:
        return {}
    found: dict[str, StoredEntity] = {}
    budget = RANGE_ROWS_PER_KEY * len(wanted)
    rows = table.query_entities(_RANGE, parameters={"pk": partition, "lo": wanted[0],
                                                    "hi": wanted[-1]},
                                select=select, results_per_page=min(budget, 1000))
    passed = ""  # every wanted key up to here is settled: found, or not stored
    for number, row in enumerate(rows, start=1):
        key = row["RowKey"]
        etag = row.metadata["etag"]
        if not (skip is not None and skip(key)) and etag is not None:  # every row has one
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
