"""The row `watermark` of each job: the last delivered position and the run that owns it.

A run claims it at its start; a page is checkpointed only with the ETag read before the
page was fetched, so a terminated (zombie) run can never move it, nor move it backwards.
The claim also records what the run reported of the rows no page reads (a NULL key or
cursor, shared/sync/null_rows.py), so that the next run reports only what is new;
checkpoints keep it as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.sql.keyset import Position
from shared.storage.tables import (
    ConcurrentWrite,
    RowAsRead,
    StoredEntity,
    read_entity,
    write_entity,
)
from shared.sync.messages import RunTotals
from shared.sync.positions import CursorCodec, StoredBound, StoredPosition, is_after
from shared.sync.state.tables import as_utc, utc_now

WATERMARK_ROW = "watermark"


class WatermarkConflict(Exception):
    """The watermark changed under this run: another run claimed it, or it would go back."""


@dataclass(frozen=True)
class NullRowsReported:
    """The rows no page reads that runs have reported (dead-lettered) so far: those with a
    NULL key whose cursor lies up to `keys_through` (None: none checked yet), and the
    rows whose cursor was NULL when the last run looked (their digests)."""

    keys_through: StoredBound | None = None
    cursor_rows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Watermark:
    position: Position
    run_id: str | None
    updated_at: datetime | None
    etag: str | None  # None: not stored yet
    # What the owning run has checkpointed so far.
    totals: RunTotals = field(default_factory=RunTotals)
    null_rows: NullRowsReported = field(default_factory=NullRowsReported)


class Watermarks:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def read(self, job: str, kind: str, initial: Position) -> Watermark:
        return watermark_from(read_entity(self.table, job, WATERMARK_ROW), kind, initial)

    def claim(self, job: str, kind: str, initial: Position, run_id: str,
              seen: RowAsRead | None = None, null_rows: NullRowsReported | None = None,
              dead_lettered: int = 0) -> Watermark:
        """Make `run_id` the watermark's owner; from now on only it may advance it.

        The run's totals start at zero (or stay, when `run_id` claims it again), plus
        `dead_lettered`: the rows without key or cursor it reported, recorded as
        `null_rows` (None: kept as they were). `seen`: the row as the caller read it,
        tried first instead of reading it again."""
        for _attempt in range(5):
            current = (watermark_from(seen.entity, kind, initial) if seen is not None
                       else self.read(job, kind, initial))
            seen = None
            totals = (current.totals if current.run_id == run_id
                      else RunTotals()).add(0, 0, dead_lettered)
            reported = current.null_rows if null_rows is None else null_rows
            entity = _entity(job, kind, current.position, run_id, totals, reported)
            try:
                etag = write_entity(self.table, entity, current.etag)
            except ConcurrentWrite:
                continue
            return Watermark(current.position, run_id, as_utc(entity["UpdatedAt"]), etag,
                             totals, reported)
        raise WatermarkConflict(f"could not claim the watermark of {job}: it kept changing")

    def advance(
        self, job: str, kind: str, current: Watermark, new_position: Position, run_id: str,
        totals: RunTotals | None = None, also_delete: Sequence[tuple[str, str]] = (),
    ) -> Watermark:
        """Checkpoint: write `new_position` (and the run's `totals` up to it) only if nobody
        wrote since `current` was read. `also_delete`: rows of the job's partition (row key,
        ETag as read) deleted in the same transaction, each only if unchanged since."""
        if current.run_id != run_id:
            raise WatermarkConflict(
                f"the watermark of {job} belongs to run {current.run_id}, not to run {run_id}"
            )
        if not is_after(new_position, current.position):
            raise WatermarkConflict(
                f"the watermark of {job} would move backwards or stay: "
                f"{new_position} is not after {current.position}"
            )
        totals = current.totals if totals is None else totals
        entity = _entity(job, kind, new_position, run_id, totals, current.null_rows)
        try:
            etag = (write_entity(self.table, entity, current.etag) if not also_delete
                    else self._write_and_delete(entity, current.etag, also_delete))
        except ConcurrentWrite:
            raise WatermarkConflict(
                f"the watermark of {job} was changed by another run since run {run_id} read it"
            ) from None
        return Watermark(new_position, run_id, as_utc(entity["UpdatedAt"]), etag, totals,
                         current.null_rows)


    def _write_and_delete(self, entity: dict[str, Any], etag: str | None,
                          rows: Sequence[tuple[str, str]]) -> str:
        unchanged = MatchConditions.IfNotModified
        write: tuple[Any, ...] = (
            ("create", entity) if etag is None else
            ("update", entity, {"mode": UpdateMode.REPLACE, "etag": etag,
                                "match_condition": unchanged}))
        deletes: list[tuple[Any, ...]] = [
            ("delete", {"PartitionKey": entity["PartitionKey"], "RowKey": row_key},
             {"etag": row_etag, "match_condition": unchanged})
            for row_key, row_etag in rows]
        try:
            written = self.table.submit_transaction([write, *deletes])
        except TableTransactionError as error:
            raise ConcurrentWrite(str(error.message)) from None
        new_etag: str = written[0]["etag"]
        return new_etag


def watermark_from(stored: StoredEntity | None, kind: str, initial: Position) -> Watermark:
    """The watermark a stored row holds; `initial`, not stored yet, when there is none."""
    if stored is None:
        return Watermark(initial, None, None, None)
    values = stored.values
    position = CursorCodec(kind).position(
        StoredPosition(values["Cursor"], values.get("Key") or ""))
    totals = RunTotals(*(int(values.get(name) or 0) for name in _TOTALS))
    through = values.get("NullKeysThrough")
    null_rows = NullRowsReported(
        None if through is None else StoredBound(through,
                                                 bool(values.get("NullKeysThroughInclusive"))),
        tuple(json.loads(values.get("NullCursorRows") or "[]")))
    return Watermark(position, values.get("RunId") or None, as_utc(values.get("UpdatedAt")),
                     stored.etag, totals, null_rows)


# The owning run's totals, as columns of the watermark row.
_TOTALS = ("RunPages", "RunRows", "RunDelivered", "RunDeadLettered")


def _entity(job: str, kind: str, position: Position, run_id: str,
            totals: RunTotals, null_rows: NullRowsReported) -> dict[str, Any]:
    stored = CursorCodec(kind).stored_position(position)
    reported: dict[str, Any] = {}
    if null_rows.keys_through is not None:
        reported["NullKeysThrough"] = null_rows.keys_through.value
        reported["NullKeysThroughInclusive"] = null_rows.keys_through.inclusive
    if null_rows.cursor_rows:
        reported["NullCursorRows"] = json.dumps(list(null_rows.cursor_rows))
    return {
        "PartitionKey": job,
        "RowKey": WATERMARK_ROW,
        "CursorKind": kind,
        "Cursor": stored.cursor,
        "Key": stored.key,
        "RunId": run_id,
        "UpdatedAt": utc_now().isoformat(),
        **dict(zip(_TOTALS, (totals.pages, totals.rows, totals.delivered,
                             totals.dead_lettered), strict=True)),
        **reported,
    }
