"""The middle step of a run, one activity per page: sync the next page.

`sync_next_page` is the checkpoint loop's body: read the watermark (and its ETag), fetch
the next page after it, mask and map it, hand it to the sink, dead-letter the records the
sink (or the mapping) rejected, and only then advance the watermark under the ETag. A
crash anywhere before the last step leaves the watermark where it was: the page is sent
again by the next attempt, which the sinks' upsert-by-external-id makes harmless.

Every failure is a `SyncRunError` (errors.py) naming the job, a code and the cause.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.crash_points import crash_point
from shared.sql.keyset import page_statement, position_of
from shared.sql.source import SourceError, SqlSource
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import PageResult
from shared.sync.positions import StoredBound
from shared.sync.sinks import Delivery, Sink, SinkRefused, SinkUnavailable
from shared.sync.state import DeadLetter, SyncState, WatermarkConflict

# The sink accepted the page, its dead letters and the watermark are not written.
PAGE_AFTER_DELIVERY = "sync.page.after_delivery"
# The watermark is advanced past the page, the activity's result is not recorded.
PAGE_AFTER_WATERMARK = "sync.page.after_watermark"

log = logging.getLogger(__name__)


def sync_next_page(
    job: SyncJob, state: SyncState, sink: Sink, run_id: str, upper_bound: StoredBound,
    source: SqlSource | None = None,
) -> PageResult:
    keyset = job.source.keyset()
    kind = keyset.cursor_kind
    codec = job.source.codec
    watermark = state.watermarks.read(job.name, kind, job.source.initial_position)
    if watermark.run_id != run_id:
        raise SyncRunError(
            job.name, "RUN_SUPERSEDED",
            f"run {run_id} no longer owns the watermark (run {watermark.run_id} claimed it); "
            "this run stops without writing",
        )
    bound = codec.bound(upper_bound)
    here = codec.stored_position(watermark.position)
    if bound.value is None:
        return PageResult(position=here, done=True)
    source = source or job.source.sql_source()
    try:
        rows = source.fetch_rows(page_statement(keyset, watermark.position, bound, job.page_size))
    except SourceError as error:
        raise SyncRunError(job.name, error.code, error.message) from None
    if not rows:
        return PageResult(position=here, done=True)

    records: list[dict[str, Any]] = []
    origins: list[dict[str, Any]] = []
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
    crash_point(PAGE_AFTER_DELIVERY)
    rejected += [_Rejected(origins[rejection.index], rejection.code, rejection.message,
                           records[rejection.index]) for rejection in delivery.rejections]
    if rejected:
        state.dead_letters.add(job.name, run_id, [
            DeadLetter(job.record_key(item.row),
                       codec.cursor_text(item.row[keyset.cursor_column]), item.code,
                       item.message, _jsonable(item.record))
            for item in rejected])

    new_position = position_of(keyset, rows[-1])
    try:
        state.watermarks.advance(job.name, kind, watermark, new_position, run_id)
    except WatermarkConflict as error:
        raise SyncRunError(job.name, "WATERMARK_CONFLICT", str(error)) from None
    crash_point(PAGE_AFTER_WATERMARK)
    outcome = PageResult(
        len(rows), delivery.accepted, len(rejected), codec.stored_position(new_position),
        done=len(rows) < job.page_size,
    )
    log.info("sync job %s: run %s page of %d rows, %d delivered, %d dead-lettered, now at %s",
             job.name, run_id, outcome.rows, outcome.delivered, outcome.dead_lettered,
             outcome.position.to_json())
    return outcome


@dataclass(frozen=True)
class _Rejected:
    """A row the mapping or the sink rejected, and the record as it was when rejected."""

    row: dict[str, Any]
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
