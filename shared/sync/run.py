"""The first and the last step of a run, each one activity: begin and end.

`begin_run` checks the source, fixes the run's upper bound (the database's clock minus
the lag, or the highest committed version), dead-letters the rows no page reads (a NULL
key in the run's window, a NULL cursor: null_rows.py), claims the watermark for the run
(counting those in its totals) and tells
whether more changed rows than the job's backlog threshold wait (backlog.py loads those);
`end_run` records how the run ended and releases the lease; with key partitions,
`end_partitioned_run` joins them first, in the same activity. Between them, pages.py.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from azure.core.exceptions import AzureError

from shared.crash_points import crash_point
from shared.log_fields import log_event
from shared.sql.keyset import (
    Position,
    UpperBound,
    count_statement,
    probe_statement,
    upper_bound_from,
    upper_bound_statement,
)
from shared.sql.source import SourceError, SqlSource
from shared.storage.tables import RowAsRead
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import PagesResult, RunBegun, RunOutcome, RunTotals
from shared.sync.null_rows import find_null_rows
from shared.sync.partitions import check_partition_key, join_partitions_reading, summed_totals
from shared.sync.state import SyncState, utc_now
from shared.sync.state.lease import LOCK_ROW
from shared.sync.state.watermarks import WATERMARK_ROW, watermark_from

# begin_run: the watermark is claimed for the run, its runs row is not written.
BEGIN_AFTER_CLAIM = "sync.begin.after_claim"
# begin_run: the runs row is written, the activity's result is not recorded.
BEGIN_AFTER_RECORD = "sync.begin.after_record"
# end_run: the run's end is recorded, the lease is not released.
END_AFTER_RECORD = "sync.end.after_record"
# end_run: the lease is released, the activity's result is not recorded.
END_AFTER_RELEASE = "sync.end.after_release"

log = logging.getLogger(__name__)


def begin_run(job: SyncJob, state: SyncState, run_id: str, started_at: datetime,
              partitions: int | None = None) -> RunBegun:
    """Check the source, fix the run's upper bound, dead-letter the rows without key or
    cursor not reported before, claim the watermark (their count in the run's totals, and
    what was reported), record the run. `partitions`: the key partitions the run was
    started with (None: the job's setting)."""
    keyset = job.source.keyset()
    source = job.source.sql_source()
    # The watermark row is read while the source is asked (a login, on a new process): the
    # claim below writes it under that read's ETag, as if it had read it itself.
    with ThreadPoolExecutor(1, thread_name_prefix="sync-begin") as pool:
        seen = pool.submit(state.job_rows, job.name, WATERMARK_ROW)
        try:
            # The probe (a missing relation or column fails it) tells the key's type too.
            check_partition_key(job, source.column_types(probe_statement(keyset)),
                                job.partitions if partitions is None else partitions)
            bound = upper_bound_from(
                keyset, source.fetch_value(upper_bound_statement(keyset)), job.source.lag
            )
            seen_row = seen.result()[WATERMARK_ROW]
            seen_watermark = watermark_from(seen_row.entity, keyset.cursor_kind,
                                            job.source.initial_position)
            found = find_null_rows(job, source, run_id, seen_watermark, bound)
        except SourceError as error:
            raise SyncRunError(job.name, error.code, error.message) from None
        # Written before the claim that counts them: a begin tried again writes the same
        # rows again (one per row) and counts them once.
        if found.letters:
            state.dead_letters.add(job.name, run_id, found.letters)
        # The changed rows are counted while the watermark is claimed: from the position
        # read, counted again in the rare case the claim found it moved since.
        position = seen_watermark.position
        counted = pool.submit(_backlog_waits, job, source, position, bound)
        watermark = state.watermarks.claim(
            job.name, keyset.cursor_kind, job.source.initial_position, run_id, seen_row,
            found.reported, len(found.letters),
        )
        crash_point(BEGIN_AFTER_CLAIM)
        backlog = (counted.result() if watermark.position == position
                   else _backlog_waits(job, source, watermark.position, bound))
    codec = job.source.codec
    stored_bound = codec.stored_bound(bound)
    start = codec.stored_position(watermark.position)
    state.runs.record(
        job.name, run_id, started_at, Outcome="running", Pages=0, Rows=0,
        UpperBound=str(stored_bound.value), StartCursor=str(start.cursor), StartKey=start.key,
        Mode="bulk" if backlog else "pages",
    )
    crash_point(BEGIN_AFTER_RECORD)
    log_event(log, "sync run began", job=job.name, run_id=run_id, start=str(start),
              upper_bound=str(stored_bound.value), mode="bulk" if backlog else "pages")
    return RunBegun(stored_bound, start, backlog)


def _backlog_waits(job: SyncJob, source: SqlSource, position: Position,
                   bound: UpperBound) -> bool:
    """Whether more rows than the job's backlog threshold lie after `position`."""
    if not job.backlog_threshold or bound.value is None:
        return False
    try:
        waiting = source.fetch_value(count_statement(
            job.source.keyset(), position, bound, job.backlog_threshold + 1))
    except SourceError as error:
        raise SyncRunError(job.name, error.code, error.message) from None
    return int(waiting or 0) > job.backlog_threshold


def end_run(
    job: SyncJob, state: SyncState, run_id: str, started_at: datetime, outcome: RunOutcome,
    totals: RunTotals, error: str | None = None,
) -> None:
    """Record how the run ended and release the lease (held for at least the min interval).

    The totals are those checkpointed with the watermark while the run owns it: exact even
    when a page's result never reached the orchestration (crash, takeover, failed page).
    """
    # The watermark (for the totals), the lock (for the release) and the rows of the run's
    # partitions in one query; the release is guarded by that read's ETag and reads again
    # only if the lock changed since.
    partitions, rows = state.partitions.of_run_with(
        job.name, job.source.cursor_kind, run_id, (WATERMARK_ROW, LOCK_ROW))
    watermark = watermark_from(rows[WATERMARK_ROW].entity, job.source.cursor_kind,
                               job.source.initial_position)
    if watermark.run_id == run_id:
        # With the pages of partitions the watermark did not count yet (a run that failed
        # before they were joined).
        totals = summed_totals(partitions.values(), watermark.totals)
    _record_end(job, state, run_id, started_at, outcome, totals, error, rows[LOCK_ROW])


def end_partitioned_run(job: SyncJob, state: SyncState, run_id: str, started_at: datetime,
                        partitions: int) -> PagesResult:
    """Join the run's key partitions (`join_partitions`), then end the run as succeeded
    (`end_run`): one activity and one read of the rows both need instead of two each.
    Again after a crash or a lost answer: the join answers from the watermark, the end is
    written again. A join refused is answered before anything of the end is written;
    storage unreachable while ending: a retryable failure, as for the join."""
    joined, rows = join_partitions_reading(job, state, run_id, partitions, (LOCK_ROW,))
    try:
        _record_end(job, state, run_id, started_at, RunOutcome.SUCCEEDED, joined.totals,
                    None, rows[LOCK_ROW])
    except AzureError as error:
        raise SyncRunError(
            job.name, "CHECKPOINT_FAILED",
            f"the run's end could not be recorded: {type(error).__name__}: {error}",
            retryable=True) from None
    return joined


def _record_end(job: SyncJob, state: SyncState, run_id: str, started_at: datetime,
                outcome: RunOutcome, totals: RunTotals, error: str | None,
                lock: RowAsRead) -> None:
    """The run's row says how it ended; then the lease (`lock`: as read before) is free."""
    now = utc_now()
    state.runs.record(
        job.name, run_id, started_at, Outcome=outcome.value, EndedAt=now,
        Pages=totals.pages, Rows=totals.rows, Delivered=totals.delivered,
        DeadLettered=totals.dead_lettered, Error=error or "",
    )
    crash_point(END_AFTER_RECORD)
    state.lease.release(job.name, run_id, now, job.min_interval, lock)
    crash_point(END_AFTER_RELEASE)
    log_event(log, "sync run ended",
              level=logging.INFO if outcome is RunOutcome.SUCCEEDED else logging.ERROR,
              job=job.name, run_id=run_id, outcome=outcome.value, pages=totals.pages,
              rows=totals.rows, delivered=totals.delivered,
              dead_lettered=totals.dead_lettered, error=error)
