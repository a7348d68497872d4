"""The queue's depth, counted where its rows are: shard rows changed in the same transaction.

Table Storage keeps no count. Each partition of the queue table (one per object) holds
`SHARDS` counter rows (RowKey `%count%<n>`, `Rows`) besides its events; every write that
creates or removes event rows is one entity-group transaction that also adds the change to
one shard, conditional on the shard's ETag. The rows and the count commit together or not
at all, so no crash or race leaves them apart, and the depth is the sum of the shards:
`SHARDS + 1` rows a partition, one query, however deep the queue.

A shard is used by one writer of this process at a time (taken from a pool), so only
writers in other processes ever race for it; the loser reads it again and tries again.

Rows stored before the counting began are not in the shards. So the count is trusted only
once a partition's base row (`%count%base`, `Offset`) exists: it is written when the
partition holds no event (`calibrate`), in one transaction that also checks every shard
still has the ETag read before that look (and creates those missing), so nothing counted
after the look is missed. Until then the depth is looked up by reading rows.

`safe_key` escapes every `%` of an id as `%25`, so no event's RowKey starts with `%count%`.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

SHARDS = 16
COUNT_PREFIX = "%count%"
BASE_ROW = f"{COUNT_PREFIX}base"
# Just after every `%count%...` key (`&` follows `%`): the end of the counter rows' range.
_COUNT_END = "%count&"
COUNTER_RANGE = {"lo": COUNT_PREFIX, "hi": _COUNT_END}
MAX_SHARD_CONFLICTS = 50


def is_counter_row(row_key: str) -> bool:
    return row_key.startswith(COUNT_PREFIX)


def _shard_row(number: int) -> str:
    return f"{COUNT_PREFIX}{number:02d}"


@dataclass
class _Shard:
    row: str
    rows: int | None = None  # None: not read (or not there) yet
    etag: str | None = None


class RowsChanged(Exception):
    """The transaction failed on an event row's condition, not on the count."""


class DepthCounter:
    def __init__(self, table: TableClient) -> None:
        self.table = table
        self._free: dict[str, queue.Queue[_Shard]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _shard(self, partition: str) -> Iterator[_Shard]:
        with self._lock:
            pool = self._free.get(partition)
            if pool is None:
                pool = self._free[partition] = queue.Queue()
                for number in random.sample(range(SHARDS), SHARDS):
                    pool.put(_Shard(_shard_row(number)))
        shard = pool.get()
        try:
            yield shard
        finally:
            pool.put(shard)

    def submit(self, partition: str, operations: list[tuple[Any, ...]], change: int) -> None:
        """Submit `operations` (on rows of `partition`) with `change` added to the count,
        all or nothing. Raises RowsChanged when an event row's condition failed."""
        if change == 0:
            try:
                self.table.submit_transaction(operations)
            except TableTransactionError as error:
                raise RowsChanged(str(error)) from None
            return
        with self._shard(partition) as shard:
            for _ in range(MAX_SHARD_CONFLICTS):
                try:
                    answers = self.table.submit_transaction(
                        [*operations, self._count_operation(partition, shard, change)])
                except TableTransactionError as error:
                    before = shard.etag
                    self._read(partition, shard)
                    if shard.etag == before:
                        raise RowsChanged(str(error)) from None
                    continue  # the shard had moved on: count again from its new value
                shard.rows = (shard.rows or 0) + change
                shard.etag = answers[-1].get("etag")
                return
        raise RowsChanged(f"the depth counter of {partition} kept changing")

    def _count_operation(self, partition: str, shard: _Shard, change: int) -> tuple[Any, ...]:
        entity = {"PartitionKey": partition, "RowKey": shard.row,
                  "Rows": (shard.rows or 0) + change}
        if shard.etag is None:
            return ("create", entity)
        return ("update", entity, {"mode": UpdateMode.REPLACE, "etag": shard.etag,
                                   "match_condition": MatchConditions.IfNotModified})

    def _read(self, partition: str, shard: _Shard) -> None:
        try:
            entity = self.table.get_entity(partition, shard.row)
        except ResourceNotFoundError:  # created by the next try
            shard.rows, shard.etag = None, None
            return
        shard.rows, shard.etag = int(entity.get("Rows", 0)), entity.metadata["etag"]

    # -- reading ------------------------------------------------------------------------

    def count(self, partition: str) -> int | None:
        """The events in `partition`, or None while its count is not calibrated."""
        rows = self._counter_rows(partition)
        base = rows.pop(BASE_ROW, None)
        if base is None:
            return None
        return int(base.get("Offset", 0)) + sum(int(row.get("Rows", 0)) for row in rows.values())

    def _counter_rows(self, partition: str) -> dict[str, Any]:
        found = self.table.query_entities(
            "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
            parameters={"p": partition, **COUNTER_RANGE})
        return {row["RowKey"]: row for row in found}

    def calibrate(self, partition: str) -> bool:
        """Start trusting the count of an empty partition: True when calibrated now or
        before, False when it holds events (or changed while looked at)."""
        rows = self._counter_rows(partition)
        if BASE_ROW in rows:
            return True
        looked = self.table.query_entities("PartitionKey eq @p", parameters={"p": partition},
                                           select=["RowKey"], results_per_page=SHARDS + 2)
        pages: Any = looked.by_page()  # the SDK's pager (typed a plain iterator)
        keys = [row["RowKey"] for row in next(pages, [])]
        if pages.continuation_token is not None or not all(map(is_counter_row, keys)):
            return False
        counted = sum(int(row.get("Rows", 0)) for row in rows.values())
        operations: list[tuple[Any, ...]] = [
            ("create", {"PartitionKey": partition, "RowKey": BASE_ROW, "Offset": -counted})]
        for number in range(SHARDS):
            row = _shard_row(number)
            if row in rows:
                operations.append(("update", {"PartitionKey": partition, "RowKey": row,
                                              "Rows": int(rows[row].get("Rows", 0))},
                                   {"mode": UpdateMode.REPLACE,
                                    "etag": rows[row].metadata["etag"],
                                    "match_condition": MatchConditions.IfNotModified}))
            else:
                operations.append(("create", {"PartitionKey": partition, "RowKey": row,
                                              "Rows": 0}))
        try:
            self.table.submit_transaction(operations)
        except TableTransactionError:
            return False
        # The shards' ETags moved: a writer holding an older one reads it again (submit).
        return True
