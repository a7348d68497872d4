"""The drain's rows in the state table: the signal, the totals, processed versions.

- `drain/signal`: `State` running | idle. Posters bump it after storing events; the drain
  declares itself idle only with the ETag it read *before* its last look at the queue. So
  an event stored after that look changed the ETag first (the drain goes on), or its
  poster sees `idle` (and starts the next drain). Nothing is left waiting in between.
- `drain/totals`: events processed, dead-lettered and superseded since the queue existed,
  and the last batch added with its counts (so a settle run again adds nothing twice).
  Only the drain writes it.
- `processed-<object>/<id>`: the newest version processed for a record, so that an older
  event arriving late is dropped instead of undoing it. Only the drain writes these.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.events.messages import SettleBatchResult
from shared.storage.key_ranges import read_rows_by_range
from shared.storage.tables import ConcurrentWrite, create_entity, read_entity, safe_key

DRAIN_PARTITION = "drain"
SIGNAL_ROW = "signal"
TOTALS_ROW = "totals"
MAX_CONFLICT_RETRIES = 200
_TRANSACTIONS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="drain-state-tx")
# What a write conditional on an ETag raises when the row changed or went away meanwhile.
_CHANGED = (ResourceModifiedError, ResourceNotFoundError)
_VERSION_FIELDS = ["RowKey", "Version"]


class DrainState(Enum):
    RUNNING = "running"
    IDLE = "idle"


@dataclass(frozen=True)
class Signal:
    state: DrainState
    posts: int
    etag: str | None  # None: no row yet (no drain ever ran)
    idle_since: datetime | None = None
    last_post_at: datetime | None = None
    idle_run_id: str | None = None  # the drain that declared `idle` last


@dataclass(frozen=True)
class Totals:
    processed: int = 0
    dead_lettered: int = 0
    superseded: int = 0


class DrainStateTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    # -- the signal -------------------------------------------------------------------

    def read_signal(self) -> Signal:
        stored = read_entity(self.table, DRAIN_PARTITION, SIGNAL_ROW)
        if stored is None:
            return Signal(DrainState.IDLE, 0, None)
        values = stored.values
        return Signal(DrainState(values.get("State", "idle")), int(values.get("Posts", 0)),
                      stored.etag, values.get("IdleSince"), values.get("LastPostAt"),
                      values.get("IdleRunId") or None)

    def mark_running(self, now: datetime) -> Signal:
        """Record that events were posted (or a drain is being started); the signal before.

        `idle` answered means the caller must start a drain; `running` means a drain is
        running and, since the signal's ETag changed after the caller's events were stored,
        will not finish without another look at the queue.

        A mark that loses the race to another writer and then finds `running` is done
        without a write of its own: that write came after this mark's first read, so after
        the caller's events were stored, and it was another poster's mark (the drain only
        ever writes `idle`). So a burst of posters costs each a few requests, not one
        retry per poster ahead of it; `posts` counts the marks written.
        """
        signal = self.read_signal()
        for _ in range(MAX_CONFLICT_RETRIES):
            entity = {"PartitionKey": DRAIN_PARTITION, "RowKey": SIGNAL_ROW,
                      "State": DrainState.RUNNING.value, "Posts": signal.posts + 1,
                      "LastPostAt": now}
            try:
                if signal.etag is None:
                    create_entity(self.table, entity)
                else:
                    self.table.update_entity(entity, mode=UpdateMode.MERGE, etag=signal.etag,
                                             match_condition=MatchConditions.IfNotModified)
            except (ConcurrentWrite, *_CHANGED):
                signal = self.read_signal()
                if signal.state is DrainState.RUNNING:
                    return signal
                continue
            return signal
        raise ConcurrentWrite("the drain signal kept changing; giving up after "
                              f"{MAX_CONFLICT_RETRIES} tries")

    def declare_idle(self, etag: str | None, now: datetime, run_id: str | None = None) -> bool:
        """Set `idle` (by the drain `run_id`) only if the signal still has `etag`; False:
        someone posted since."""
        entity = {"PartitionKey": DRAIN_PARTITION, "RowKey": SIGNAL_ROW,
                  "State": DrainState.IDLE.value, "IdleSince": now, "IdleRunId": run_id or ""}
        try:
            if etag is None:
                create_entity(self.table, {**entity, "Posts": 0})
            else:
                self.table.update_entity(entity, mode=UpdateMode.MERGE, etag=etag,
                                         match_condition=MatchConditions.IfNotModified)
        except (ConcurrentWrite, *_CHANGED):
            return False
        return True

    # -- totals -----------------------------------------------------------------------

    def read_totals(self) -> Totals:
        stored = read_entity(self.table, DRAIN_PARTITION, TOTALS_ROW)
        if stored is None:
            return Totals()
        values = stored.values
        return Totals(int(values.get("Processed", 0)), int(values.get("DeadLettered", 0)),
                      int(values.get("Superseded", 0)))

    def add_batch_to_totals(self, batch_id: str | None, settled: SettleBatchResult,
                            ) -> SettleBatchResult:
        """Add a settled batch's counts to the totals once; answer the batch's counts.

        The totals row remembers the last batch added and its counts: a settle run again
        for it (the activity's answer was lost to a crash) adds nothing and answers what
        was added the first time. Only one drain settles, one batch after another, so the
        last batch is the only one that can be settled again.
        """
        if batch_id is None and not (settled.removed or settled.dead_lettered
                                     or settled.superseded):
            return settled
        for _ in range(MAX_CONFLICT_RETRIES):
            stored = read_entity(self.table, DRAIN_PARTITION, TOTALS_ROW)
            values: dict[str, Any] = stored.values if stored else {}
            if batch_id is not None and values.get("LastBatch") == batch_id:
                return SettleBatchResult(
                    int(values.get("LastRemoved", 0)), int(values.get("LastRetrying", 0)),
                    int(values.get("LastDeadLettered", 0)),
                    int(values.get("LastSuperseded", 0)))
            entity = {"PartitionKey": DRAIN_PARTITION, "RowKey": TOTALS_ROW,
                      "Processed": int(values.get("Processed", 0)) + settled.removed,
                      "DeadLettered": int(values.get("DeadLettered", 0)) + settled.dead_lettered,
                      "Superseded": int(values.get("Superseded", 0)) + settled.superseded,
                      "LastBatch": batch_id or "", "LastRemoved": settled.removed,
                      "LastRetrying": settled.retrying,
                      "LastDeadLettered": settled.dead_lettered,
                      "LastSuperseded": settled.superseded}
            try:
                if stored is None:
                    create_entity(self.table, entity)
                else:
                    self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=stored.etag,
                                             match_condition=MatchConditions.IfNotModified)
                return settled
            except (ConcurrentWrite, *_CHANGED):
                continue
        raise ConcurrentWrite("the drain totals kept changing")

    # -- processed versions --------------------------------------------------------------

    def processed_version(self, object_name: str, record_id: str) -> int | None:
        stored = read_entity(self.table, _processed_partition(object_name), safe_key(record_id))
        return None if stored is None else _stored_version(stored.values)

    def processed_versions(self, records: Sequence[tuple[str, str]], pool: ThreadPoolExecutor,
                           ) -> dict[tuple[str, str], int | None]:
        """The newest processed version of each (object, id): one range read per object
        over the records' keys (key_ranges.py), not a read per record."""
        by_object: dict[str, list[str]] = {}
        for object_name, record_id in records:
            by_object.setdefault(object_name, []).append(record_id)
        versions: dict[tuple[str, str], int | None] = {}
        for object_name, ids in by_object.items():
            stored = read_rows_by_range(self.table, _processed_partition(object_name),
                                        [safe_key(record_id) for record_id in ids],
                                        _VERSION_FIELDS, pool)
            for record_id in ids:
                row = stored.get(safe_key(record_id))
                versions[(object_name, record_id)] = (None if row is None
                                                      else _stored_version(row.values))
        return versions

    def record_processed_many(self, records: list[tuple[str, str, int | None]]) -> None:
        """Remember each record's newest processed version, one transaction per object and
        100 records (side by side); an unversioned event was newer than any version by
        arrival, so it clears what was remembered."""
        by_partition: dict[str, list[tuple[Any, ...]]] = {}
        for object_name, record_id, version in records:
            partition, row = _processed_partition(object_name), safe_key(record_id)
            key = {"PartitionKey": partition, "RowKey": row}
            operation = (("upsert", {**key, "Version": str(version)},
                          {"mode": UpdateMode.REPLACE}) if version is not None
                         # A delete of a missing row would fail the transaction: upsert an
                         # empty version instead, which reads as none.
                         else ("upsert", {**key, "Version": ""}, {"mode": UpdateMode.REPLACE}))
            by_partition.setdefault(partition, []).append(operation)
        chunks = [operations[start:start + 100] for operations in by_partition.values()
                  for start in range(0, len(operations), 100)]
        list(_TRANSACTIONS.map(self.table.submit_transaction, chunks))


def _stored_version(values: dict[str, Any]) -> int | None:
    version = values.get("Version")
    return None if version in (None, "") else int(version)


def _processed_partition(object_name: str) -> str:
    return f"processed-{safe_key(object_name)}"
