"""The middle step of a run: sync pages, many per activity, each checkpointed.

`sync_pages` reads the watermark (and its ETag) once, then works through pages until its
time budget or page count is spent or the run's upper bound is reached: fetch the next pages
after the last one (small pages are cut from one query of up to `ROWS_PER_QUERY` rows) and
mask and map them (read ahead on a thread while the pages before are delivered), hand each
to the sink, up to `pages_in_flight` pages at once (in_flight.py: a page whose records share
a key with a page in flight waits for it; the key the sink writes by, so two source keys
mapped to one external id are one record), then, strictly in the pages' order, dead-letter
the records the sink (or the mapping) rejected and checkpoint: advance the watermark under
the ETag of the previous checkpoint, together with the run's totals. Checkpoints are
written on a thread of their own while the next pages are synced; at most
`checkpoint_pages` accepted pages wait for theirs (fewer once `checkpoint_interval` seconds
passed), and all are written before the activity answers or fails.

A crash anywhere leaves the watermark at the last checkpoint: the pages the sink accepted
after it are sent again by whoever continues the run, at most `checkpoint_pages +
pages_in_flight` pages (those waiting for their checkpoint, and those in flight or accepted
and not yet taken in order), which the sinks' upsert-by-external-id makes harmless; they are
counted once, since the totals move with the watermark. A page that failed as a whole stops
the activity: the pages in flight beside it are waited for, and neither it nor any page
after it is checkpointed.

A row whose key or cursor is NULL is in no page (it has no position to checkpoint): the
run's begin dead-letters it instead (null_rows.py).

With a key partition (partitions.py), the pages are those of the partition's keys only,
from the partition's own position, and the checkpoints go to its row instead of the
watermark (checkpoints.py); reaching the run's end is recorded there too.

Every failure is a `SyncRunError` (errors.py) naming the job, a code and the cause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any

from shared.crash_points import crash_point
from shared.cyclic_gc import collection_paused
from shared.log_fields import log_event
from shared.sql.keyset import KeyPartition, Position, page_statement, position_of
from shared.sql.source import SourceError, SqlSource
from shared.sync.checkpoints import (  # the crash point, named here since it began here
    PAGE_AFTER_WATERMARK as PAGE_AFTER_WATERMARK,
)
from shared.sync.checkpoints import (
    Checkpoints,
    CheckpointTarget,
    WatermarkTarget,
)
from shared.sync.errors import SyncRunError
from shared.sync.in_flight import InFlight
from shared.sync.job import SyncJob
from shared.sync.messages import PagesResult
from shared.sync.partitions import partition_target
from shared.sync.positions import StoredBound
from shared.sync.read_ahead import ReadAhead
from shared.sync.sinks import Delivery, Sink, SinkRefused, SinkUnavailable
from shared.sync.state import DeadLetter, SyncState
from shared.sync.state.dead_letters import jsonable_record

# The sink accepted a page, its dead letters and its checkpoint are not written.
PAGE_AFTER_DELIVERY = "sync.page.after_delivery"

log = logging.getLogger(__name__)

# Rows one source query reads: small pages are cut from one query's rows (at most this
# many held at once), so a 500-row page does not pay a query round trip, a statement
# handle and the driver's result set each.
ROWS_PER_QUERY = 5000

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
    clock: Callable[[], float] = time.monotonic, partition: KeyPartition | None = None,
) -> PagesResult:
    """The run's next pages (of `partition` only, from its own position, when given).

    The cyclic garbage collector is paused meanwhile: pages make rows, records and
    batches without reference cycles, which reference counting frees, so its passes (one
    every 700 new objects, and now and then one over the whole process) found nothing."""
    with collection_paused():
        return _synced_pages(job, state, sink, run_id, upper_bound, budget, source, clock,
                             partition)


def _synced_pages(
    job: SyncJob, state: SyncState, sink: Sink, run_id: str, upper_bound: StoredBound,
    budget: PageBudget, source: SqlSource | None, clock: Callable[[], float],
    partition: KeyPartition | None,
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
    target: CheckpointTarget = (WatermarkTarget(job, state, run_id, watermark)
                                if partition is None else
                                partition_target(job, state, run_id, watermark, partition))
    if bound.value is None or target.reached:
        return PagesResult(totals=target.totals,
                           position=codec.stored_position(target.position), done=True)
    source = source or job.source.sql_source()
    checkpoints = Checkpoints(job, run_id, target, clock)
    started = clock()
    pages = rows = 0
    done = False

    size = job.page_size
    pages_per_query = max(1, ROWS_PER_QUERY // size)
    keyed = job.pages_in_flight > 1  # keys are only compared between pages in flight

    def pages_after(position: Position) -> Iterator[_Page]:
        while True:
            try:
                names, found = source.fetch_tuples(
                    page_statement(keyset, position, bound, size * pages_per_query, partition))
            except SourceError as error:
                raise SyncRunError(job.name, error.code, error.message) from None
            keys_of = _page_keys(job, names) if keyed else None
            for start in range(0, max(len(found), 1), size):
                page = _mapped_page(job, names, found[start:start + size], keys_of)
                yield page
                if len(page.rows) < size:
                    return
            position = position_of(keyset, page.row(-1))

    def settle(page: _Page, delivery: Delivery) -> None:
        nonlocal pages, rows
        _settle_page(job, state, run_id, page, delivery, checkpoints)
        pages, rows = pages + 1, rows + len(page.rows)

    started_pages = 0
    try:
        with ReadAhead(pages_after(target.position), depth=_read_ahead_depth(job)) \
                as reader, InFlight[_Page, Delivery](job.pages_in_flight, "sync-delivery") \
                as in_flight:
            for page in reader:
                if page.rows:
                    while in_flight.must_wait(page.keys):
                        settle(*in_flight.take_oldest())
                    in_flight.start(page, page.keys, partial(_deliver, job, sink, page.records))
                    started_pages += 1
                    while in_flight.oldest_done():
                        settle(*in_flight.take_oldest())
                done = len(page.rows) < job.page_size
                if done or started_pages >= budget.pages or clock() - started >= budget.seconds:
                    break
            while in_flight:
                settle(*in_flight.take_oldest())
    finally:
        # Whatever happened, what the sink accepted (and the run took, in order) is
        # checkpointed before leaving; a page still in flight after a failure is not.
        written = checkpoints.finish()
    if done:
        written.reach_end()
    result = PagesResult(pages, rows, written.totals, codec.stored_position(written.position),
                         done=done)
    log_event(log, "sync pages synced", job=job.name, run_id=run_id,
              partition=target.partition, pages=pages, rows=rows,
              seconds=round(clock() - started, 2),
              position=result.position.to_text() if result.position else None)
    return result


@dataclass(frozen=True)
class _Page:
    """A page read and mapped, not delivered yet: the rows as the driver gave them (values
    in `names` order; a row becomes a dict by name only when needed: position, dead
    letter), the records for the sink, the row of each record, and the rows the mapping
    rejected."""

    names: tuple[str, ...]
    rows: list[Sequence[Any]]
    records: list[dict[str, Any]]
    origins: list[int]
    rejected: list[_Rejected]
    # The keys the sink writes the page's records by, when pages in flight are compared;
    # else empty.
    keys: frozenset[Any]

    def row(self, index: int) -> Row:
        return dict(zip(self.names, self.rows[index], strict=True))


PageKeys = Callable[[list[Sequence[Any]], list[dict[str, Any]]], frozenset[Any]]


def _mapped_page(job: SyncJob, names: tuple[str, ...], rows: list[Sequence[Any]],
                 keys_of: PageKeys | None) -> _Page:
    """Mask and map a page. This runs on the read-ahead thread, while the pages before are
    being delivered: the mapping overlaps the sink's answer instead of waiting for it."""
    masked_row = job.row_masker(names)
    map_record = job.map_record
    rejected: list[_Rejected] = []
    try:  # the common case: every row maps, in one comprehension
        records = [map_record(masked_row(values)) for values in rows]
        origins = list(range(len(rows)))
    except Exception:  # a bad row: the page is mapped again row by row, to dead-letter it
        records, origins, rejected = _mapped_row_by_row(names, rows, masked_row, map_record)
    keys = keys_of(rows, records) if keys_of is not None else frozenset()
    return _Page(names, rows, records, origins, rejected, keys)


def _mapped_row_by_row(
    names: tuple[str, ...], rows: list[Sequence[Any]],
    masked_row: Callable[[Sequence[Any]], Row], map_record: Callable[[Row], dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[int], list[_Rejected]]:
    records: list[dict[str, Any]] = []
    origins: list[int] = []
    rejected: list[_Rejected] = []
    for index, values in enumerate(rows):
        masked = masked_row(values)
        try:
            records.append(map_record(masked))
        except Exception as error:  # a bad row is dead-lettered; it must not stop the run
            rejected.append(_Rejected(dict(zip(names, values, strict=True)), "MAPPING_FAILED",
                                      f"{type(error).__name__}: {error}", masked))
            continue
        origins.append(index)
    return records, origins, rejected


def _page_keys(job: SyncJob, names: tuple[str, ...]) -> PageKeys:
    """How a page's keys are read: the key each record is written by at the target (the
    Salesforce sink's external id), or the rows' source keys for a sink that writes by
    them. A record naming no key (refused on its own) holds nothing back."""
    record_key = job.sink_key_reader()
    if record_key is not None:
        return lambda _rows, records: frozenset(map(record_key, records)) - {None}
    row_key = _key_reader(names, job.source.key_columns)
    return lambda rows, _records: frozenset(map(row_key, rows))


def _settle_page(job: SyncJob, state: SyncState, run_id: str, page: _Page,
                 delivery: Delivery, checkpoints: Checkpoints) -> None:
    """Dead-letter what the mapping or the sink rejected, then hand the page's position
    to the checkpoints: pages are settled in their order, whatever order their deliveries
    ended in."""
    keyset = job.source.keyset()
    records, origins = page.records, page.origins
    rejected = page.rejected + [
        _Rejected(page.row(origins[rejection.index]), rejection.code, rejection.message,
                  records[rejection.index])
        for rejection in delivery.rejections]
    if rejected:
        codec = job.source.codec
        state.dead_letters.add(job.name, run_id, [
            DeadLetter(job.record_key(item.row),
                       codec.cursor_text(item.row[keyset.cursor_column]), item.code,
                       item.message, jsonable_record(item.record))
            for item in rejected])
    checkpoints.accept(position_of(keyset, page.row(-1)), len(page.rows), delivery.accepted,
                       len(rejected))


def _key_reader(names: tuple[str, ...],
                key_columns: Sequence[str]) -> Callable[[Sequence[Any]], Any]:
    """A row as the driver gives it -> its key (the value of a one-column key, else the
    tuple of the values)."""
    indexes = [names.index(column) for column in key_columns]
    if len(indexes) == 1:
        return itemgetter(indexes[0])
    return lambda values: tuple(values[index] for index in indexes)


def _read_ahead_depth(job: SyncJob) -> int:
    # Pages mapped ahead: enough that the next source query is run while the pages before
    # are still being delivered, not once the last of them was taken.
    return max(2, job.pages_in_flight)


@dataclass(frozen=True)
class _Rejected:
    """A row the mapping or the sink rejected, and the record as it was when rejected."""

    row: Row
    code: str
    message: str
    record: dict[str, Any]


def _deliver(job: SyncJob, sink: Sink, records: list[dict[str, Any]]) -> Delivery:
    """Hand a page's records to the sink (on a delivery thread when several pages are in
    flight)."""
    try:
        delivery = sink.deliver(records) if records else Delivery(0)
    except SinkUnavailable as error:
        raise SyncRunError(
            job.name, error.code, f"the sink is unavailable: {error.message}", retryable=True
        ) from None
    except SinkRefused as error:
        raise SyncRunError(job.name, error.code, f"the sink refused the page: {error.message}") \
            from None
    crash_point(PAGE_AFTER_DELIVERY)
    return delivery
