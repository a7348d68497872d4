"""The queue table: one row per object and id holding the newest event, and dead letters.

Rows (queue_rows.py): PartitionKey = object, RowKey = id (escaped), the event's fields,
its attempts and when it is due.

Race-free collapse: every write of a versioned event is conditional — a create that fails
when the row exists, or a replace with the ETag read just before deciding — so two posters
of the same record never overwrite each other blindly; the loser reads again and decides
again (`collapse.replaces`). An unversioned event is newer than whatever it meets by
arrival order, so it replaces whatever it finds (created if absent, else replaced with the
ETag read, so the count knows which): the write that commits last wins, which is arrival
order. The drain removes or updates a row only with the ETag it took it with:
an event replaced meanwhile stays for the next batch.

Settling a drained batch is settling.py's (`EventQueue` inherits it).

Depth: every write that creates or removes rows is one transaction with the change to the
partition's depth count (depth.py), so rows and count never part; the status reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, UpdateMode

from shared.crash_points import crash_point
from shared.events.collapse import is_stale, replaces
from shared.events.depth import DepthCounter, RowsChanged
from shared.events.drain_state import DrainStateTable
from shared.events.messages import EventKey, EventRef, TakeBatchResult
from shared.events.posting import read_waiting_rows, transaction_chunks
from shared.events.queue_rows import dead_letter_key, event_entity, ref_of, version_of
from shared.events.settling import QueueSettling
from shared.events.status import (
    EVENT_PARTITIONS,
    LOOK_LIMIT,
    QueueSnapshot,
    calibrate_depth,
    counted_depth,
    look_at_rows,
)
from shared.events.storage_pools import ROW_CALLS
from shared.events.validation import Event
from shared.storage.tables import (
    ConcurrentWrite,
    read_entity,
    replace_if_unchanged,
    safe_key,
)

log = logging.getLogger(__name__)

MAX_STORE_RETRIES = 200
# Transactions of one post written at once (each with a depth counter shard of its own).
POST_TRANSACTIONS = 4
TRANSACTION_ATTEMPTS = 2
# Crash point: one transaction of a post committed, the post's others under way or not begun.
POST_TRANSACTION_STORED = "events.post.after_transaction"
# Spaces around every @parameter: the SDK substitutes whole space-separated words.
_DUE = "(Attempts eq 0 or RetryAt le @now )"
_TAKEN_FIELDS = ["PartitionKey", "RowKey", "Object", "RecordId", "Operation", "Version",
                 "Attempts"]


class PartlyStored(Exception):
    """Storing a post failed: `kept` of its `total` events are stored (or an event at
    least as new waits for their record); whether the others are is not known."""

    def __init__(self, kept: int, total: int) -> None:
        super().__init__(f"{kept} of {total} events stored")
        self.kept, self.total = kept, total


@dataclass(frozen=True)
class StoreCounts:
    stored: int
    superseded: int  # older than the event already waiting for the same record


class EventQueue(QueueSettling):
    """The queue table and its dead letters: posting and draining here, settling a
    drained batch in settling.py, looking at the rows in status.py."""

    def __init__(self, events: TableClient, dead_letters: TableClient,
                 state: DrainStateTable) -> None:
        self.events = events
        self.dead_letters = dead_letters
        self.state = state
        self.counter = DepthCounter(events)

    # -- posting ------------------------------------------------------------------------

    def store(self, events: Sequence[Event], now: datetime) -> StoreCounts:
        """Store every event (collapsed per record: at most one event per object and id)
        before returning, a few transactions side by side; raises PartlyStored on a
        storage failure, once every transaction begun has ended, saying how many events
        were stored: posting them all again is safe."""
        chunks = list(transaction_chunks(events))
        if len(chunks) <= 1:
            stored = sum(self._store_chunk(chunk, now) for chunk in chunks)
            return StoreCounts(stored, len(events) - stored)
        # A pool of the post's own: a small post never waits behind a large one's chunks.
        with ThreadPoolExecutor(max_workers=min(POST_TRANSACTIONS, len(chunks)),
                                thread_name_prefix="event-post") as pool:
            futures = [pool.submit(self._store_chunk, chunk, now) for chunk in chunks]
            wait(futures)
        failures = [future.exception() for future in futures if future.exception()]
        if failures:
            failed = sum(len(chunk) for chunk, future in zip(chunks, futures, strict=True)
                         if future.exception())
            raise PartlyStored(len(events) - failed, len(events)) from failures[0]
        stored = sum(future.result() for future in futures)
        return StoreCounts(stored, len(events) - stored)

    def _store_chunk(self, events: list[Event], now: datetime) -> int:
        """One entity-group transaction for events of one partition, with the rows it
        creates counted (depth.py): each create conditional on absence and each replace on
        the ETag read. A row changed meanwhile fails the whole transaction, which is then
        decided again. The rows are read by key range (posting.py), those of unversioned
        events too: taken as new unread, a record still waiting failed the transaction,
        which cost more than the read (a re-post of waiting records took twice as long)."""
        partition = safe_key(events[0].object)
        for _ in range(TRANSACTION_ATTEMPTS):
            waiting = read_waiting_rows(self.events, partition,
                                        [safe_key(event.id) for event in events], ROW_CALLS)
            operations: list[tuple[Any, ...]] = []
            created = 0
            for event in events:
                row = waiting.get(safe_key(event.id))
                entity = event_entity(event, now)
                if row is None:
                    operations.append(("create", entity))
                    created += 1
                elif event.version is None or replaces(event.version, version_of(row.values)):
                    operations.append(("update", entity, {
                        "mode": UpdateMode.REPLACE, "etag": row.etag,
                        "match_condition": MatchConditions.IfNotModified}))
            if not operations:
                return 0
            try:
                self.counter.submit(partition, operations, created)
            except RowsChanged:
                continue
            crash_point(POST_TRANSACTION_STORED)
            return len(operations)
        # Contended beyond reason (the same records posted at once, again and again): one
        # at a time, each under its own condition.
        return sum(self.store_one(event, now) for event in events)

    def store_one(self, event: Event, now: datetime, letter_key: str | None = None) -> bool:
        """True when stored, False when an event at least as new already waits. For a dead
        letter's event (its letter's RowKey `letter_key`) an unversioned event waiting is
        newer by arrival, unless it is the letter's own."""
        entity = event_entity(event, now)
        for attempt in range(MAX_STORE_RETRIES):
            current = (read_entity(self.events, entity["PartitionKey"], entity["RowKey"])
                       if attempt else None)
            if current is None:  # new, or taken by the drain meanwhile: create it
                try:
                    self.counter.submit(entity["PartitionKey"], [("create", entity)], 1)
                    return True
                except RowsChanged:
                    continue
            if event.version is not None and not replaces(event.version,
                                                          version_of(current.values)):
                return False
            if (letter_key is not None and version_of(current.values) is None
                    and dead_letter_key(event.id, current.etag) != letter_key):
                return False
            try:
                replace_if_unchanged(self.events, entity, current.etag)
                return True
            except ConcurrentWrite:
                continue
        raise ConcurrentWrite(f"event {event.object}/{event.id} kept changing while stored")

    def requeue(self, event: Event, now: datetime, letter_key: str) -> bool:
        """Store a dead letter's event (its letter's RowKey `letter_key`) again unless a
        newer one waits (True when stored): a versioned event by the collapse rule over a
        versioned one waiting, an unversioned one only where none waits (whatever waits
        arrived after it; so does an unversioned event a versioned one meets), or where the
        event waiting is the letter's own (the drain wrote the letter and has not yet removed the
        event: replaced, the drain's removal finds it changed and leaves it)."""
        if event.version is not None:
            return self.store_one(event, now, letter_key)
        entity = event_entity(event, now)
        for _ in range(MAX_STORE_RETRIES):
            # Read before deciding: a row gone between a refused create and its read may
            # be the letter's own event, which the drain removes just after the letter.
            current = read_entity(self.events, entity["PartitionKey"], entity["RowKey"])
            if current is None:
                try:
                    self.counter.submit(entity["PartitionKey"], [("create", entity)], 1)
                    return True
                except RowsChanged:
                    continue
            if dead_letter_key(event.id, current.etag) != letter_key:
                return False
            try:
                replace_if_unchanged(self.events, entity, current.etag)
                return True
            except ConcurrentWrite:
                continue
        raise ConcurrentWrite(f"event {event.object}/{event.id} kept changing while stored")

    # -- draining -----------------------------------------------------------------------

    def take_batch(self, limit: int, after: EventKey | None, now: datetime) -> TakeBatchResult:
        """Up to `limit` due events after `after` (wrapping round), stale ones dropped."""
        rows = list(islice(self._due_rows(now, after, after_cursor=True), limit))
        if len(rows) < limit and after is not None:
            rows += islice(self._due_rows(now, after, after_cursor=False), limit - len(rows))
        refs = [ref_of(row) for row in rows]
        cursor = EventKey(rows[-1]["PartitionKey"], rows[-1]["RowKey"]) if rows else after
        stale = {(ref.object, ref.id) for ref in self._drop_stale(refs)}
        fresh = [ref for ref in refs if (ref.object, ref.id) not in stale]
        return TakeBatchResult(fresh, cursor, len(refs) - len(fresh))

    def _due_rows(self, now: datetime, after: EventKey | None,
                  after_cursor: bool) -> Iterator[Any]:
        query = _DUE
        parameters: dict[str, Any] = {"now": now}
        if after is not None:
            parameters |= {"pk": after.partition, "rk": after.row}
            query += (" and (PartitionKey gt @pk or (PartitionKey eq @pk and RowKey gt @rk ))"
                      if after_cursor else
                      " and (PartitionKey lt @pk or (PartitionKey eq @pk and RowKey le @rk ))")
        return iter(self.events.query_entities(query, parameters=parameters,
                                               select=_TAKEN_FIELDS, results_per_page=1000))

    def _drop_stale(self, refs: list[EventRef]) -> list[EventRef]:
        """Remove (if unchanged) the events older than the version processed for their
        record, and answer them. The processed versions are read by key range, one query
        per object for the batch; an unversioned event is never stale."""
        versioned = [ref for ref in refs if ref.version is not None]
        if not versioned:
            return []
        processed = self.state.processed_versions(
            [(ref.object, ref.id) for ref in versioned], ROW_CALLS)
        stale = [ref for ref in versioned
                 if is_stale(ref.version, processed[(ref.object, ref.id)])]
        list(ROW_CALLS.map(self._delete_if_unchanged, stale))
        return stale

    def has_due_events(self, now: datetime) -> bool:
        return next(self._due_rows(now, None, after_cursor=True), None) is not None

    # -- looking (status.py) -------------------------------------------------------------

    def snapshot(self, now: datetime, limit: int | None = LOOK_LIMIT) -> QueueSnapshot:
        return look_at_rows(self.events, now, limit)

    def depth(self) -> int:
        """How many events wait, counted by reading every row's key."""
        return look_at_rows(self.events, None, None).depth

    def depth_up_to(self, limit: int | None = LOOK_LIMIT) -> QueueSnapshot:
        return look_at_rows(self.events, None, limit)

    def counted_depth(self) -> int | None:
        """How many events wait, from the depth counters (None: not yet calibrated)."""
        return counted_depth(self.counter, EVENT_PARTITIONS)

    def calibrate_depth(self) -> bool:
        return calibrate_depth(self.counter, EVENT_PARTITIONS)

    def dead_letter_rows(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = islice(self.dead_letters.list_entities(results_per_page=limit), limit)
        return [dict(row) for row in rows]
