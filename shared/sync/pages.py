"""The three steps of a run, each one activity: begin, sync the next page, end.

`sync_next_page` is the checkpoint loop's body: read the watermark (and its ETag), fetch
the next page after it, mask and map it, hand it to the sink, dead-letter the records the
sink (or the mapping) rejected, and only then advance the watermark under the ETag. A
crash anywhere before the last step leaves the watermark where it was: the page is sent
again by the next attempt, which the sinks' upsert-by-external-id makes harmless.

Every failure is a `SyncRunError` naming the job, a code and the cause; `retryable` says
whether trying the page again later may succeed (sink unavailable) or not (source missing,
credentials refused, watermark taken over by another run).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.sql.keyset import (
    page_statement,
    position_of,
    probe_statement,
    upper_bound_from,
    upper_bound_statement,
)
from shared.sql.source import SourceError, SqlSource
from shared.sync.job import SyncJob
from shared.sync.positions import (
    decode_bound,
    encode_bound,
    encode_cursor,
    encode_position,
)
from shared.sync.sinks import Delivery, Sink, SinkRefused, SinkUnavailable
from shared.sync.state import DeadLetter, SyncState, WatermarkConflict, utc_now

log = logging.getLogger(__name__)


class SyncRunError(Exception):
    """A run step failed; the message names the job and the cause, never a secret."""

    def __init__(self, job: str, code: str, message: str, retryable: bool = False) -> None:
        self.job = job
        self.code = code
        self.message = message
        self.retryable = retryable
        super().__init__(f"sync job {job!r}: {code}: {message}")

    def as_result(self) -> dict[str, Any]:
        return {"ok": False, "code": self.code, "error": str(self), "retryable": self.retryable}


@dataclass(frozen=True)
class PageOutcome:
    rows: int
    delivered: int
    dead_lettered: int
    position: dict[str, Any]
    done: bool

    def as_result(self) -> dict[str, Any]:
        return {
            "ok": True, "rows": self.rows, "delivered": self.delivered,
            "dead_lettered": self.dead_lettered, "position": self.position, "done": self.done,
        }


def source_for(job: SyncJob) -> SqlSource:
    return SqlSource(
        job.source.connection_string, job.source.relation,
        login_timeout=job.source.login_timeout, query_timeout=job.source.query_timeout,
    )


def begin_run(
    job: SyncJob, state: SyncState, run_id: str, started_at: datetime
) -> dict[str, Any]:
    """Check the source, fix the run's upper bound, claim the watermark, record the run."""
    keyset = job.source.keyset()
    source = source_for(job)
    try:
        source.fetch_rows(probe_statement(keyset))
        bound = upper_bound_from(
            keyset, source.fetch_value(upper_bound_statement(keyset)), job.source.lag
        )
    except SourceError as error:
        raise SyncRunError(job.name, error.code, error.message) from None
    watermark = state.claim_watermark(
        job.name, keyset.cursor_kind, job.source.initial_position, run_id
    )
    encoded_bound = encode_bound(keyset.cursor_kind, bound)
    start = encode_position(keyset.cursor_kind, watermark.position)
    state.record_run(
        job.name, run_id, started_at, Outcome="running", Pages=0, Rows=0,
        UpperBound=str(encoded_bound["value"]), StartCursor=str(start["cursor"]),
        StartKey=start["key"],
    )
    log.info("sync job %s: run %s began after %s, upper bound %s",
             job.name, run_id, start, encoded_bound["value"])
    return {"ok": True, "upper_bound": encoded_bound, "watermark": start}


def sync_next_page(
    job: SyncJob, state: SyncState, sink: Sink, run_id: str, upper_bound: dict[str, Any],
    source: SqlSource | None = None,
) -> PageOutcome:
    keyset = job.source.keyset()
    kind = keyset.cursor_kind
    bound = decode_bound(kind, upper_bound)
    watermark = state.read_watermark(job.name, kind, job.source.initial_position)
    if watermark.run_id != run_id:
        raise SyncRunError(
            job.name, "RUN_SUPERSEDED",
            f"run {run_id} no longer owns the watermark (run {watermark.run_id} claimed it); "
            "this run stops without writing",
        )
    here = encode_position(kind, watermark.position)
    if bound.value is None:
        return PageOutcome(0, 0, 0, here, done=True)
    source = source or source_for(job)
    try:
        rows = source.fetch_rows(page_statement(keyset, watermark.position, bound, job.page_size))
    except SourceError as error:
        raise SyncRunError(job.name, error.code, error.message) from None
    if not rows:
        return PageOutcome(0, 0, 0, here, done=True)

    records: list[dict[str, Any]] = []
    origins: list[dict[str, Any]] = []
    letters: list[DeadLetter] = []
    for row in rows:
        masked = job.mask(row)
        try:
            record = job.map_record(masked)
        except Exception as error:  # a bad row is dead-lettered; it must not stop the run
            letters.append(DeadLetter(
                job.record_key(row), encode_cursor(kind, row[keyset.cursor_column]),
                "MAPPING_FAILED",
                f"{type(error).__name__}: {error}", _jsonable(masked),
            ))
            continue
        records.append(record)
        origins.append(row)

    delivery = _deliver(job, sink, records)
    for rejection in delivery.rejections:
        origin = origins[rejection.index]
        letters.append(DeadLetter(
            job.record_key(origin), encode_cursor(kind, origin[keyset.cursor_column]),
            rejection.code, rejection.message, _jsonable(records[rejection.index]),
        ))
    if letters:
        state.add_dead_letters(job.name, run_id, letters)

    new_position = position_of(keyset, rows[-1])
    try:
        state.advance_watermark(job.name, kind, watermark, new_position, run_id)
    except WatermarkConflict as error:
        raise SyncRunError(job.name, "WATERMARK_CONFLICT", str(error)) from None
    outcome = PageOutcome(
        len(rows), delivery.accepted, len(letters), encode_position(kind, new_position),
        done=len(rows) < job.page_size,
    )
    log.info("sync job %s: run %s page of %d rows, %d delivered, %d dead-lettered, now at %s",
             job.name, run_id, outcome.rows, outcome.delivered, outcome.dead_lettered,
             outcome.position)
    return outcome


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


def end_run(
    job: SyncJob, state: SyncState, run_id: str, started_at: datetime, outcome: str,
    totals: dict[str, Any], error: str | None = None,
) -> None:
    """Record how the run ended and release the lease (held for at least the min interval)."""
    now = utc_now()
    state.record_run(
        job.name, run_id, started_at, Outcome=outcome, EndedAt=now,
        Pages=int(totals.get("pages", 0)), Rows=int(totals.get("rows", 0)),
        Delivered=int(totals.get("delivered", 0)),
        DeadLettered=int(totals.get("dead_lettered", 0)), Error=error or "",
    )
    state.release_lease(job.name, run_id, now, job.min_interval)
    if outcome == "succeeded":
        log.info("sync job %s: run %s succeeded: %s", job.name, run_id, totals)
    else:
        log.error("sync job %s: run %s %s: %s", job.name, run_id, outcome, error)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value if isinstance(value, int | float | str | bool) or value is None
            else str(value) for key, value in values.items()}
