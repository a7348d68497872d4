"""The middle step of a run: sync pages, many per activity, each checkpointed.

`sync_pages` reads the watermark (and its ETag) once, then works through pages until its
time budget or page count is spent or the run's upper bound is reached: fetch the next page
after the last one (read ahead on a thread while the current page is delivered), mask and
map it, hand it to the sink, dead-letter the records the sink (or the mapping) rejected,
and checkpoint: advance the watermark under the ETag of the previous checkpoint, together
with the run's totals. A checkpoint is written after every `checkpoint_pages` accepted
pages or `checkpoint_interval` seconds, and always before the activity answers or fails.

A crash anywhere leaves the watermark at the last checkpoint: the pages accepted after it
are sent again by whoever continues the run (at most `checkpoint_pages` pages, plus the
one in flight), which the sinks' upsert-by-external-id makes harmless, and they are counted
once, since the totals move with the watermark.

Every failure is a `SyncRunError` (errors.py) naming the job, a code and the cause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from shared import crash_points
from shared.sql.keyset import Position, page_statement, position_of
from shared.sql.source import SourceError, SqlSource
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import PagesResult
from shared.sync.positions import StoredBound
from shared.sync.read_ahead import ReadAhead
from shared.sync.sinks import Delivery, Sink, SinkRefused, SinkUnavailable
from shared.sync.state import DeadLetter, SyncState, Watermark, WatermarkConflict

log = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass(frozen=True)
class PageBudget:
    """How much one activity does: at most `pages` pages, and no page started after
    `seconds` (a page under way is finished)."""

    seconds: float = 30.0
    pages: int = 1000


DEFAULT_BUDGET = PageBudget()


def sync_pages(
    job: SyncJob, state: SyncState, sink: Sink, run_id: str, upper_bound: StoredBound,
    budget: PageBudget = DEFAULT_BUDGET, source: SqlSource | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PagesResult:
    keyset = job.source.keyset()
    codec = job.source.codec
    watermark = state.watermarks.read(job.name, keyset.cursor_kind, job.source.initial_position)
    if watermark.run_id != run_id:
        raise SyncRunError(
            job.name, "RUN_SUPERSEDED",
            f"run {run_id} no longer owns the watermark (run {watermark.run_id} claimed it); "
            "this run stops without writing",
        )
    bound = codec.bound(upper_bound)
    if bound.value is None:
        return PagesResult(totals=watermark.totals,
                           position=codec.stored_position(watermark.position), done=True)
    source = source or job.source.sql_source()
    checkpoint = _Checkpoint(job, state, run_id, watermark, clock)
    started = clock()
    pages = rows = 0
    done = False

    def pages_after(position: Position) -> Iterator[list[Row]]:
        while True:
            try:
                page = source.fetch_rows(page_statement(keyset, position, bound, job.page_size))
            except SourceError as error:
                raise SyncRunError(job.name, error.code, error.message) from None
            yield page
            if len(page) < job.page_size:
                return
            position = position_of(keyset, page[-1])

    try:
        with ReadAhead(pages_after(watermark.position)) as reader:
            for page in reader:
                if page:
                    _sync_page(job, state, sink, run_id, page, checkpoint)
                    pages, rows = pages + 1, rows + len(page)
                done = len(page) < job.page_size
                if done or pages >= budget.pages or clock() - started >= budget.seconds:
                    break
    finally:
        # Whatever happened, what the sink accepted is checkpointed before leaving.
        checkpoint.write()
    result = PagesResult(pages, rows, checkpoint.watermark.totals,
                         codec.stored_position(checkpoint.watermark.position), done=done)
    log.info("sync job %s: run %s synced %d pages, %d rows in %.2f s; run totals %s, now at %s",
             job.name, run_id, pages, rows, clock() - started, result.totals, result.position)
    return result


class _Checkpoint:
    """The accepted pages not yet written, and the watermark as last written."""

    def __init__(self, job: SyncJob, state: SyncState, run_id: str, watermark: Watermark,
                 clock: Callable[[], float]) -> None:
        self.job, self.state, self.run_id = job, state, run_id
        self.watermark = watermark
        self.clock = clock
        self.position: Position | None = None
        self.totals = watermark.totals
        self.pending = 0
        self.written_at = clock()

    def accept(self, position: Position, rows: int, delivered: int, dead_lettered: int) -> None:
        self.position = position
        self.totals = self.totals.add(rows, delivered, dead_lettered)
        self.pending += 1
        if (self.pending >= self.job.checkpoint_pages
                or self.clock() - self.written_at >= self.job.checkpoint_interval):
            self.write()

    def write(self) -> None:
        if not self.pending or self.position is None:
            return
        try:
            self.watermark = self.state.watermarks.advance(
                self.job.name, self.job.source.cursor_kind, self.watermark, self.position,
                self.run_id, self.totals)
        except WatermarkConflict as error:
            raise SyncRunError(self.job.name, "WATERMARK_CONFLICT", str(error)) from None
        self.pending = 0
        self.written_at = self.clock()
        crash_points.reached("sync.page.checkpointed")


def _sync_page(job: SyncJob, state: SyncState, sink: Sink, run_id: str, rows: list[Row],
               checkpoint: _Checkpoint) -> None:
    keyset = job.source.keyset()
    records: list[dict[str, Any]] = []
    origins: list[Row] = []
    rejected: list[_Rejected] = []
    for row in rows:
        masked = job.mask(row)
        try:
            record = job.map_record(masked)
        except Exception as error:  # a bad row is dead-lettered; it must not stop the run
            rejected.append(_Rejected(row, "MAPPING_FAILED", f"{type(error).__name__}: {error}",
                                      masked))
            continue
        records.append(record)
        origins.append(row)
    delivery = _deliver(job, sink, records)
    rejected += [_Rejected(origins[rejection.index], rejection.code, rejection.message,
                           records[rejection.index]) for rejection in delivery.rejections]
    if rejected:
        codec = job.source.codec
        state.dead_letters.add(job.name, run_id, [
            DeadLetter(job.record_key(item.row),
                       codec.cursor_text(item.row[keyset.cursor_column]), item.code,
                       item.message, _jsonable(item.record))
            for item in rejected])
    checkpoint.accept(position_of(keyset, rows[-1]), len(rows), delivery.accepted,
                      len(rejected))


@dataclass(frozen=True)
class _Rejected:
    """A row the mapping or the sink rejected, and the record as it was when rejected."""

    row: Row
    code: str
    message: str
    record: dict[str, Any]


def _deliver(job: SyncJob, sink: Sink, records: list[dict[str, Any]]) -> Delivery:
    if not records:
        return Delivery(0)
    try:
        return sink.deliver(records)
    except SinkUnavailable as error:
        raise SyncRunError(
            job.name, error.code, f"the sink is unavailable: {error.message}", retryable=True
        ) from None
    except SinkRefused as error:
        raise SyncRunError(job.name, error.code, f"the sink refused the page: {error.message}") \
            from None


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value if isinstance(value, int | float | str | bool) or value is None
            else str(value) for key, value in values.items()}
