"""A run's pages in key partitions, synced side by side: N activities at once, each from
its own checkpointed position, and the watermark moved once all of them are done.

The rows are split by their one integer key column (`KeyPartition`: the key modulo N, in
SQL that SQL Server, PostgreSQL and SQLite run alike), so every change of one record is
read by one partition, in (cursor, key) order. Partitions are allowed only where no two
partitions can write one record at the target (`SyncJob._partition_problems`: the sink
writes by a key that follows the source key); `check_partition_key` refuses, when a run
begins, a key column that is not an integer.

Each partition keeps its position and totals in its row of the job's state
(state/partitions.py), checkpointed as the watermark is, under ETags, and tied to the run:
a run that no longer owns the watermark stops without writing (RUN_SUPERSEDED). The
watermark itself stays where the run found it until `join_partitions`: when every
partition reached the run's upper bound, it takes the latest position any partition
reached (the last row of the run in (cursor, key) order: every row up to the bound was
read by one partition, so the next run neither skips a row nor reads one again) and the
run's totals, and the partitions' rows are deleted, in one transaction. A run that fails
before leaves the watermark where it was: the next run sends its rows again (at least
once; upserts make that harmless).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import reduce

from azure.core.exceptions import AzureError

from shared.crash_points import crash_point, fault_point
from shared.log_fields import log_event
from shared.sql.keyset import KeyPartition, Position
from shared.sql.source import ColumnTypes
from shared.storage.tables import RowAsRead
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import PagesResult, RunTotals
from shared.sync.positions import is_after
from shared.sync.state import SyncState, Watermark, WatermarkConflict
from shared.sync.state.partitions import PartitionConflict, PartitionPosition
from shared.sync.state.watermarks import WATERMARK_ROW, watermark_from

# Every partition reached the run's end; the watermark has not moved past them yet.
PARTITIONS_BEFORE_JOIN = "sync.partitions.before_join"
# The watermark moved past the partitions, the activity's result is not recorded.
PARTITIONS_AFTER_JOIN = "sync.partitions.after_join"
# A fault point: the join's write (the watermark and the partitions' rows) fails.
PARTITIONS_JOIN_WRITE = "sync.partitions.join_write"

log = logging.getLogger(__name__)

NO_TOTALS = RunTotals()


class PartitionTarget:
    """Checkpoints of one partition of a run (a `CheckpointTarget`)."""

    def __init__(self, job: SyncJob, state: SyncState, row: PartitionPosition) -> None:
        self.job, self.state, self.row = job, state, row

    @property
    def position(self) -> Position:
        return self.row.position

    @property
    def totals(self) -> RunTotals:
        return self.row.totals

    @property
    def partition(self) -> int:
        return self.row.index

    @property
    def reached(self) -> bool:
        return self.row.done

    def advance(self, position: Position, totals: RunTotals) -> None:
        self._check_owner()
        self.row = self.state.partitions.write(
            self.job.name, self.job.source.cursor_kind, self.row, position, totals)

    def reach_end(self) -> None:
        """As a checkpoint's write fails: the watermark lost for good; the row changed
        since (another run's late write) or storage unreachable, to be tried again."""
        try:
            self._check_owner()
            self.row = self.state.partitions.write(
                self.job.name, self.job.source.cursor_kind, self.row, self.row.position,
                self.row.totals, done=True)
        except PartitionConflict as error:
            raise SyncRunError(self.job.name, "PARTITION_CONFLICT", str(error),
                               retryable=True) from None
        except WatermarkConflict as error:
            raise SyncRunError(self.job.name, "WATERMARK_CONFLICT", str(error)) from None
        except AzureError as error:
            raise SyncRunError(
                self.job.name, "CHECKPOINT_FAILED",
                f"the partition's end could not be written: {type(error).__name__}: {error}",
                retryable=True) from None

    def _check_owner(self) -> None:
        # The watermark's ETag does not guard a partition's row: whether the run still owns
        # it is read first, so that a run another one took over stops at its next write,
        # as an unpartitioned run's checkpoint fails then.
        owner = self.state.watermarks.read(self.job.name, self.job.source.cursor_kind,
                                           self.job.source.initial_position).run_id
        if owner != self.row.run_id:
            raise WatermarkConflict(
                f"run {self.row.run_id} no longer owns the watermark of {self.job.name} "
                f"(run {owner} claimed it): partition {self.row.index} stops")


def partition_target(job: SyncJob, state: SyncState, run_id: str, watermark: Watermark,
                     partition: KeyPartition) -> PartitionTarget:
    """Where partition `partition` of the run has got to: its row, or, not written by the
    run yet, the watermark (which does not move before every partition is done)."""
    return PartitionTarget(job, state, state.partitions.read(
        job.name, job.source.cursor_kind, partition.index, run_id, watermark.position))


def check_partition_key(job: SyncJob, columns: ColumnTypes, partitions: int) -> None:
    """Refuse to split a run in `partitions` by a key column that is not an integer: `%`
    would fail on text in PostgreSQL and SQL Server, and split it by a number SQLite makes
    up, and a fractional number would be in no partition. `columns`: what the source's
    probe statement selects (`SqlSource.column_types`)."""
    if partitions == 1:
        return
    column = job.source.key_columns[0]
    kind, scale = columns[column]
    if kind is int or (kind is Decimal and not scale):
        return
    raise SyncRunError(
        job.name, "PARTITIONS_UNSUPPORTED",
        f"{job.partitions_setting} is {partitions}, but the key column {column} holds "
        f"{kind.__name__} values{f' with {scale} decimals' if scale else ''}: rows are split "
        f"by an integer key only (an integer column, or a decimal of scale 0: a PostgreSQL "
        f"numeric without one is read with 6); cast the key to bigint in the view, or set "
        f"{job.partitions_setting} to 1")


def join_partitions(job: SyncJob, state: SyncState, run_id: str, count: int) -> PagesResult:
    """Once every partition reached the run's end: the watermark to the latest position
    they reached, with the run's totals, and their rows deleted, in one transaction. Again
    after a crash or a lost answer: the rows are gone, the watermark answers. Storage
    unreachable: a retryable failure (nothing was written), as for a page's checkpoint."""
    return join_partitions_reading(job, state, run_id, count, ())[0]


def join_partitions_reading(job: SyncJob, state: SyncState, run_id: str, count: int,
                            also_read: Sequence[str]) -> tuple[PagesResult, dict[str, RowAsRead]]:
    """`join_partitions`, and the job's rows `also_read` as they were before it, read in
    the same query as the partitions and the watermark (the run's end needs the lock)."""
    try:
        rows, read = state.partitions.of_run_with(job.name, job.source.cursor_kind, run_id,
                                                  (WATERMARK_ROW, *also_read))
        return _joined(job, state, run_id, count, rows, read[WATERMARK_ROW]), read
    except WatermarkConflict as error:
        raise SyncRunError(job.name, "WATERMARK_CONFLICT", str(error)) from None
    except AzureError as error:
        raise SyncRunError(
            job.name, "CHECKPOINT_FAILED",
            f"the partitions could not be joined: {type(error).__name__}: {error}",
            retryable=True) from None


def _joined(job: SyncJob, state: SyncState, run_id: str, count: int,
            rows: dict[int, PartitionPosition], seen: RowAsRead) -> PagesResult:
    kind = job.source.cursor_kind
    codec = job.source.codec
    watermark = watermark_from(seen.entity, kind, job.source.initial_position)
    if watermark.run_id != run_id:
        raise SyncRunError(
            job.name, "RUN_SUPERSEDED",
            f"run {run_id} no longer owns the watermark (run {watermark.run_id} claimed it); "
            "this run stops without writing")
    if len(rows) < count:  # joined already (or no row to read: the source was empty)
        return PagesResult(totals=watermark.totals,
                           position=codec.stored_position(watermark.position), done=True)
    waiting = sorted(index for index, row in rows.items() if not row.done)
    if waiting:
        raise SyncRunError(job.name, "PARTITIONS_NOT_DONE",
                           f"partitions {waiting} of run {run_id} did not reach its end")
    end = reduce(lambda latest, row: row.position if is_after(row.position, latest)
                 else latest, rows.values(), watermark.position)
    totals = summed_totals(rows.values(), watermark.totals)
    crash_point(PARTITIONS_BEFORE_JOIN)
    written = [(row.row_key, row.etag or "") for row in rows.values()]
    fault_point(PARTITIONS_JOIN_WRITE)
    if is_after(end, watermark.position):
        watermark = state.watermarks.advance(job.name, kind, watermark, end, run_id, totals,
                                             also_delete=written)
    else:  # no partition read a row: nothing to count either
        state.partitions.delete(job.name, written)
    crash_point(PARTITIONS_AFTER_JOIN)
    position = codec.stored_position(watermark.position)
    log_event(log, "sync partitions joined", job=job.name, run_id=run_id, partitions=count,
              rows=watermark.totals.rows, position=position.to_text())
    return PagesResult(totals=watermark.totals, position=position, done=True)


def partition_totals(job: SyncJob, state: SyncState, run_id: str) -> RunTotals:
    """What the run's partitions checkpointed and the watermark does not count yet."""
    return summed_totals(state.partitions.of_run(job.name, job.source.cursor_kind,
                                                 run_id).values())


def summed_totals(rows: Iterable[PartitionPosition], start: RunTotals = NO_TOTALS
                  ) -> RunTotals:
    """`start` plus what each of the partitions' `rows` checkpointed."""
    return reduce(lambda total, row: total.plus(row.totals), rows, start)
