"""The rows `partition-<k>` of a job whose run syncs its pages in key partitions: where
partition k of the run has got to (its last checkpointed position and its totals), and
whether it reached the run's end.

Each row names the run it belongs to: a row of another run is no position of this one (the
partition starts from the watermark). A row is written only under the ETag it was read
with, as the watermark is, so two writers of one partition never both succeed. The rows of
a run are deleted in the same transaction that advances the watermark past them
(`Watermarks.advance(..., also_delete=...)`): then no row of the run is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableTransactionError

from shared.sql.keyset import Position
from shared.storage.tables import (
    ConcurrentWrite,
    RowAsRead,
    StoredEntity,
    read_entity,
    write_entity,
)
from shared.sync.messages import RunTotals
from shared.sync.positions import CursorCodec, StoredPosition
from shared.sync.state.tables import utc_now
from shared.sync.state.watermarks import WatermarkConflict

ROW_PREFIX = "partition-"


class PartitionConflict(WatermarkConflict):
    """A partition's row changed since it was read: written by the run this one took over
    from (its last write landing late) or by another attempt of the partition. Unlike a
    lost watermark, reading the row again settles it."""

_TOTALS = ("RunPages", "RunRows", "RunDelivered", "RunDeadLettered")


@dataclass(frozen=True)
class PartitionPosition:
    """Partition `index` of run `run_id`: its position and totals as last written (`etag`
    None: no row yet; a row of another run is replaced under its ETag)."""

    index: int
    run_id: str
    position: Position
    totals: RunTotals
    done: bool
    etag: str | None

    @property
    def row_key(self) -> str:
        return f"{ROW_PREFIX}{self.index}"


class PartitionPositions:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def of_run(self, job: str, kind: str, run_id: str) -> dict[int, PartitionPosition]:
        """The rows of `run_id`'s partitions, by index (one query)."""
        found = self.table.query_entities(
            "PartitionKey eq @job and RowKey ge @first and RowKey lt @past and RunId eq @run",
            parameters={"job": job, "first": ROW_PREFIX, "past": ROW_PREFIX[:-1] + ".",
                        "run": run_id})
        rows = (_from_entity(entity, entity.metadata["etag"] or "", kind) for entity in found)
        return {row.index: row for row in rows}

    def of_run_with(self, job: str, kind: str, run_id: str, row_keys: Sequence[str],
                    ) -> tuple[dict[int, PartitionPosition], dict[str, RowAsRead]]:
        """The rows of `run_id`'s partitions and the job's rows `row_keys` (the watermark,
        the lock), in one query: a step that needs both waits for one round trip."""
        parameters = {"job": job, "first": ROW_PREFIX, "past": ROW_PREFIX[:-1] + ".",
                      **{f"row{index}": key for index, key in enumerate(row_keys)}}
        named = " or ".join(f"RowKey eq @row{index}" for index in range(len(row_keys)))
        # Spaces inside the parentheses: the SDK finds `@name` between whitespace only.
        found = self.table.query_entities(
            f"PartitionKey eq @job and ( {named} or ( RowKey ge @first and RowKey lt @past ) )",
            parameters=parameters)
        partitions: dict[int, PartitionPosition] = {}
        rows: dict[str, StoredEntity] = {}
        for entity in found:
            etag = entity.metadata["etag"]
            assert etag is not None  # the service sends the ETag of every entity it returns
            if entity["RowKey"] in row_keys:
                rows[entity["RowKey"]] = StoredEntity(dict(entity), etag)
            elif entity.get("RunId") == run_id:
                row = _from_entity(entity, etag, kind)
                partitions[row.index] = row
        return partitions, {key: RowAsRead(rows.get(key)) for key in row_keys}

    def read(self, job: str, kind: str, index: int, run_id: str,
             start: Position) -> PartitionPosition:
        """Partition `index` of `run_id` as last checkpointed; from `start` (the
        watermark) when the run has not written it yet."""
        stored = read_entity(self.table, job, f"{ROW_PREFIX}{index}")
        if stored is None:  # no run wrote this partition yet
            return PartitionPosition(index, run_id, start, RunTotals(), False, None)
        row = _from_entity(stored.values, stored.etag, kind)
        if row.run_id != run_id:
            return PartitionPosition(index, run_id, start, RunTotals(), False, row.etag)
        return row

    def write(self, job: str, kind: str, current: PartitionPosition, position: Position,
              totals: RunTotals, done: bool = False) -> PartitionPosition:
        """Checkpoint the partition, only if nobody wrote its row since `current`."""
        written = replace(current, position=position, totals=totals, done=done)
        try:
            etag = write_entity(self.table, _entity(job, kind, written), current.etag)
        except ConcurrentWrite:
            raise PartitionConflict(
                f"partition {current.index} of {job} was written by another run or attempt "
                f"since run {current.run_id} read it") from None
        return replace(written, etag=etag)


    def delete(self, job: str, rows: list[tuple[str, str]]) -> None:
        """Delete rows (row key, ETag as read) in one transaction, each only if unchanged."""
        try:
            self.table.submit_transaction([
                ("delete", {"PartitionKey": job, "RowKey": row_key},
                 {"etag": etag, "match_condition": MatchConditions.IfNotModified})
                for row_key, etag in rows])
        except TableTransactionError as error:
            raise WatermarkConflict(
                f"the partitions of {job} were written since they were read: "
                f"{error.message}") from None


def _from_entity(entity: Any, etag: str, kind: str) -> PartitionPosition:
    position = CursorCodec(kind).position(
        StoredPosition(entity["Cursor"], entity.get("Key") or ""))
    totals = RunTotals(*(int(entity.get(name) or 0) for name in _TOTALS))
    return PartitionPosition(int(entity["RowKey"].removeprefix(ROW_PREFIX)), entity["RunId"],
                             position, totals, bool(entity.get("Done")),
                             etag)


def _entity(job: str, kind: str, row: PartitionPosition) -> dict[str, Any]:
    stored = CursorCodec(kind).stored_position(row.position)
    return {
        "PartitionKey": job, "RowKey": row.row_key, "CursorKind": kind,
        "Cursor": stored.cursor, "Key": stored.key, "RunId": row.run_id, "Done": row.done,
        "UpdatedAt": utc_now().isoformat(),
        **dict(zip(_TOTALS, (row.totals.pages, row.totals.rows, row.totals.delivered,
                             row.totals.dead_lettered), strict=True)),
    }
