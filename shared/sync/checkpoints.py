"""Checkpoints of the pages a run synced: where the next page starts, and the totals so
far, written on a thread of their own while the next pages are synced.

The target is the job's watermark (a run in one piece), or the row of one key partition
(shared/sync/partitions.py). Either is written only under the ETag of its previous write,
so a run that lost it stops instead of writing on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from shared.crash_points import crash_point
from shared.log_fields import log_event
from shared.sql.keyset import Position
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import RunTotals
from shared.sync.state import SyncState, Watermark, WatermarkConflict
from shared.sync.state.partitions import PartitionConflict

# A checkpoint advanced the watermark (or a partition's position), the activity's result
# is not recorded.
PAGE_AFTER_WATERMARK = "sync.page.after_watermark"

log = logging.getLogger(__name__)


class CheckpointTarget(Protocol):
    """Where checkpoints go: the position and totals as last written, and the write."""

    @property
    def position(self) -> Position: ...

    @property
    def totals(self) -> RunTotals: ...

    @property
    def partition(self) -> int | None: ...

    @property
    def reached(self) -> bool:
        """Whether the pages reached the run's upper bound already."""

    def advance(self, position: Position, totals: RunTotals) -> None:
        """Write, under the ETag of the last write; `WatermarkConflict` if it changed."""

    def reach_end(self) -> None:
        """Record that the pages reached the run's upper bound (after the last write)."""


class WatermarkTarget:
    """The job's watermark, owned by the run: a run synced in one piece."""

    partition = None
    reached = False

    def __init__(self, job: SyncJob, state: SyncState, run_id: str,
                 watermark: Watermark) -> None:
        self.job, self.state, self.run_id = job, state, run_id
        self.watermark = watermark

    @property
    def position(self) -> Position:
        return self.watermark.position

    @property
    def totals(self) -> RunTotals:
        return self.watermark.totals

    def advance(self, position: Position, totals: RunTotals) -> None:
        self.watermark = self.state.watermarks.advance(
            self.job.name, self.job.source.cursor_kind, self.watermark, position,
            self.run_id, totals)

    def reach_end(self) -> None:
        """The watermark is the run's end already."""


class Checkpoints:
    """Writes the watermark on a thread of its own while the next pages are synced.

    Each write takes the latest accepted position (and the totals up to it) to the
    `target` (the watermark, or a key partition's row), under the ETag of the previous
    write. `accept` waits while `checkpoint_pages` accepted pages
    are still waiting for their checkpoint, so no more than these are ever sent again
    after a crash (plus the pages in flight meanwhile). Fewer than that are written
    once `checkpoint_interval` seconds passed since the last write. `finish` writes what is
    left and stops the thread; a failed write (the watermark taken over) is raised there
    or at the next `accept`.
    """

    def __init__(self, job: SyncJob, run_id: str, target: CheckpointTarget,
                 clock: Callable[[], float]) -> None:
        self.job, self.run_id = job, run_id
        self.target = target  # as last written
        self.clock = clock
        self._latest: tuple[Position, RunTotals] | None = None  # accepted, not yet written
        self._totals = self._logged = target.totals
        self._waiting = 0  # accepted pages whose checkpoint is not written yet
        self._written_at = clock()
        self._finishing = False
        self._error: SyncRunError | None = None
        self._changed = threading.Condition()
        self._writer = threading.Thread(target=self._write_checkpoints, daemon=True,
                                        name="sync-checkpoints")
        self._writer.start()

    def accept(self, position: Position, rows: int, delivered: int, dead_lettered: int) -> None:
        with self._changed:
            while self._waiting >= self.job.checkpoint_pages and self._error is None:
                self._changed.wait()
            self._raise_failure()
            self._totals = self._totals.add(rows, delivered, dead_lettered)
            self._latest = (position, self._totals)
            self._waiting += 1
            self._changed.notify_all()

    def finish(self) -> CheckpointTarget:
        with self._changed:
            self._finishing = True
            self._changed.notify_all()
        self._writer.join()
        self._raise_failure()
        return self.target

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _due(self) -> bool:
        if self._latest is None:
            return False
        return (self._finishing or self._waiting >= self.job.checkpoint_pages
                or self.clock() - self._written_at >= self.job.checkpoint_interval)

    def _log_checkpoint(self, totals: RunTotals) -> None:
        # The alerts (infra/modules/alerts.bicep) read these fields: dead letters and lag.
        before, self._logged = self._logged, totals
        position = self.job.source.codec.stored_position(self.target.position)
        log_event(log, "sync checkpoint", job=self.job.name, run_id=self.run_id,
                  partition=self.target.partition,
                  rows=totals.rows - before.rows, delivered=totals.delivered - before.delivered,
                  dead_lettered=totals.dead_lettered - before.dead_lettered,
                  cursor_kind=self.job.source.cursor_kind, cursor=position.cursor,
                  position=position.to_text())

    def _write_checkpoints(self) -> None:
        try:
            self._write_until_finished()
        except BaseException as error:  # never leave `accept` waiting on a dead writer
            with self._changed:
                self._error = SyncRunError(
                    self.job.name, "CHECKPOINT_FAILED",
                    f"the checkpoint writer failed: {type(error).__name__}: {error}",
                    retryable=True)
                self._changed.notify_all()

    def _write_until_finished(self) -> None:
        while True:
            with self._changed:
                while not self._due():
                    if self._finishing:
                        return
                    self._changed.wait(timeout=self.job.checkpoint_interval or None)
                assert self._latest is not None
                (position, totals), covered = self._latest, self._waiting
            failure: SyncRunError | None
            try:
                self.target.advance(position, totals)
            except PartitionConflict as error:  # tried again, the row read afresh
                failure = SyncRunError(self.job.name, "PARTITION_CONFLICT", str(error),
                                       retryable=True)
            except WatermarkConflict as error:
                failure = SyncRunError(self.job.name, "WATERMARK_CONFLICT", str(error))
            except Exception as error:  # storage unreachable: the pages are sent again later
                failure = SyncRunError(
                    self.job.name, "CHECKPOINT_FAILED",
                    f"the checkpoint could not be written: {type(error).__name__}: {error}",
                    retryable=True)
            else:
                crash_point(PAGE_AFTER_WATERMARK)
                failure = None
                self._log_checkpoint(totals)
            with self._changed:
                if failure is not None:
                    self._error = failure
                    self._changed.notify_all()
                    return
                self._waiting -= covered
                if self._waiting == 0:
                    self._latest = None
                self._written_at = self.clock()
                self._changed.notify_all()


