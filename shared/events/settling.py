"""Settling a drained batch in the queue table: each event by its outcome.

A done event is removed (if unchanged since taken); a failed one is rescheduled with a
backoff, or after its last attempt moved to the dead letters, its letter keyed by the
event's ETag so a settle run again writes the same letter. An event replaced meanwhile
stays for the next batch (superseded). The processed versions are remembered before any
row goes, and the batch's counts are added to the totals once (drain_state.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.crash_points import crash_point
from shared.events.depth import DepthCounter, RowsChanged
from shared.events.drain_state import DrainStateTable
from shared.events.messages import EventOutcome, EventRef, SettleBatchResult
from shared.events.posting import TRANSACTION_LIMIT
from shared.events.queue_rows import dead_letter_key, delete_if_unchanged, is_rescheduled
from shared.events.storage_pools import ROW_CALLS, TRANSACTIONS
from shared.storage.tables import read_entity, safe_key

MAX_RETRY_DELAY = timedelta(minutes=15)
MAX_ERROR_TEXT = 2000
# Crash point (shared/crash_points.py): a batch's finished events are removed (and its
# failures rescheduled), the totals not yet added.
EVENTS_SETTLED = "events.settle.after_remove"


class Settled(Enum):
    """How one event of a settled batch ended."""

    REMOVED = "removed"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"
    SUPERSEDED = "superseded"
    GONE = "gone"  # already settled (an activity run again after a crash)


class QueueSettling:
    """The settling half of `EventQueue` (queue.py), which holds these tables."""

    events: TableClient
    dead_letters: TableClient
    state: DrainStateTable
    counter: DepthCounter

    def settle(self, events: Sequence[EventRef], outcomes: Sequence[EventOutcome],
               max_attempts: int, retry_delay: float, now: datetime,
               batch_id: str | None = None) -> SettleBatchResult:
        """Settle a batch's events by their outcomes; safe to run again for the same batch
        (`batch_id`): an event an earlier try settled is counted as that try settled it,
        and the totals take the batch's counts once."""
        if len(events) != len(outcomes):
            raise ValueError(f"{len(outcomes)} outcomes for {len(events)} events")
        done = [ref for ref, outcome in zip(events, outcomes, strict=True) if outcome.done]
        failed = [(ref, outcome) for ref, outcome in zip(events, outcomes, strict=True)
                  if not outcome.done]
        # Remembered before the rows go: a crash in between drops nothing newer.
        self.state.record_processed_many([(ref.object, ref.id, ref.version) for ref in done])
        settled = self._delete_all_if_unchanged(done)
        settled += list(ROW_CALLS.map(
            lambda pair: self._settle_failure(pair[0], pair[1], max_attempts, retry_delay, now),
            failed))
        crash_point(EVENTS_SETTLED)
        # A done event already gone was removed by an earlier try of this settle, which
        # may have ended before adding it to the totals.
        removed = sum(outcome in (Settled.REMOVED, Settled.GONE)
                      for outcome in settled[:len(done)])
        result = SettleBatchResult(
            removed=removed, retrying=settled.count(Settled.RETRYING),
            dead_lettered=settled.count(Settled.DEAD_LETTERED),
            superseded=settled.count(Settled.SUPERSEDED))
        return self.state.add_batch_to_totals(batch_id, result)

    def _delete_all_if_unchanged(self, refs: list[EventRef]) -> list[Settled]:
        """Remove the events with one transaction per 99 (the transactions side by side);
        if one of them changed, its transaction fails and each of its events is removed on
        its own (the changed one stays)."""
        chunks = [refs[start:start + TRANSACTION_LIMIT]
                  for start in range(0, len(refs), TRANSACTION_LIMIT)]
        return [settled for part in TRANSACTIONS.map(self._delete_chunk, chunks)
                for settled in part]

    def _delete_chunk(self, chunk: list[EventRef]) -> list[Settled]:
        partitions = {safe_key(ref.object) for ref in chunk}
        if len(partitions) == 1:
            try:
                self.counter.submit(partitions.pop(), [delete_if_unchanged(ref) for ref in chunk],
                                    -len(chunk))
            except RowsChanged:
                pass
            else:
                return [Settled.REMOVED] * len(chunk)
        return list(ROW_CALLS.map(self._delete_if_unchanged, chunk))

    def _settle_failure(self, ref: EventRef, outcome: EventOutcome, max_attempts: int,
                        retry_delay: float, now: datetime) -> Settled:
        attempts = ref.attempts + 1
        if attempts >= max_attempts:
            return self._dead_letter(ref, outcome, attempts, now)
        delay = min(timedelta(seconds=retry_delay * 2 ** (attempts - 1)), MAX_RETRY_DELAY)
        change: dict[str, Any] = {"PartitionKey": safe_key(ref.object), "RowKey": safe_key(ref.id),
                  "Attempts": attempts, "RetryAt": now + delay,
                  "LastErrorCode": outcome.code or "FAILED",
                  "LastError": (outcome.message or "")[:MAX_ERROR_TEXT]}
        try:
            self.events.update_entity(change, mode=UpdateMode.MERGE, etag=ref.etag,
                                      match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            current = read_entity(self.events, safe_key(ref.object), safe_key(ref.id))
            return (Settled.RETRYING if current is not None and is_rescheduled(current.values,
                                                                                change)
                    else Settled.SUPERSEDED)
        except ResourceNotFoundError:
            return Settled.GONE
        return Settled.RETRYING

    def _delete_if_unchanged(self, ref: EventRef) -> Settled:
        # A transaction, not delete_entity: that answers success for a row already gone,
        # which would count a removal twice.
        try:
            self.counter.submit(safe_key(ref.object), [delete_if_unchanged(ref)], -1)
        except RowsChanged:
            current = read_entity(self.events, safe_key(ref.object), safe_key(ref.id))
            return Settled.GONE if current is None else Settled.SUPERSEDED
        return Settled.REMOVED

    def _dead_letter(self, ref: EventRef, outcome: EventOutcome, attempts: int,
                     now: datetime) -> Settled:
        # The dead letter's key comes from the event's ETag: written again after a crash,
        # it is the same row, not a second one.
        row = dead_letter_key(ref.id, ref.etag)
        current = read_entity(self.events, safe_key(ref.object), safe_key(ref.id))
        if current is None:  # an earlier try of this settle moved it, or it was settled
            written = read_entity(self.dead_letters, safe_key(ref.object), row)
            return Settled.GONE if written is None else Settled.DEAD_LETTERED
        if current.etag != ref.etag:
            # A newer event came in: it will be tried. An earlier try may have written the
            # letter before the newer event replaced this one: it is no failure.
            with contextlib.suppress(ResourceNotFoundError):
                self.dead_letters.delete_entity(safe_key(ref.object), row)
            return Settled.SUPERSEDED
        letter: dict[str, Any] = {
            "PartitionKey": safe_key(ref.object), "RowKey": row, "Object": ref.object,
            "RecordId": ref.id, "Operation": ref.operation.value, "Attempts": attempts,
            "ErrorCode": outcome.code or "FAILED",
            "Error": (outcome.message or "")[:MAX_ERROR_TEXT], "FailedAt": now,
            "EnqueuedAt": current.values.get("EnqueuedAt")}
        for name in ("Version", "Payload"):
            if current.values.get(name) is not None:
                letter[name] = current.values[name]
        self.dead_letters.upsert_entity(letter, mode=UpdateMode.REPLACE)
        settled = self._delete_if_unchanged(ref)
        if settled is Settled.SUPERSEDED:
            # A newer event came in between: it will be tried; this one is not a failure.
            with contextlib.suppress(ResourceNotFoundError):
                self.dead_letters.delete_entity(letter["PartitionKey"], row)
            return settled
        return Settled.DEAD_LETTERED if settled is Settled.REMOVED else settled
