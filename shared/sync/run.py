"""The first and the last step of a run, each one activity: begin and end.

`begin_run` checks the source, fixes the run's upper bound (the database's clock minus
the lag, or the highest committed version) and claims the watermark for the run;
`end_run` records how the run ended and releases the lease. Between them, pages.py.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.sql.keyset import probe_statement, upper_bound_from, upper_bound_statement
from shared.sql.source import SourceError
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import RunBegun, RunOutcome, RunTotals
from shared.sync.state import SyncState, utc_now

log = logging.getLogger(__name__)


def begin_run(job: SyncJob, state: SyncState, run_id: str, started_at: datetime) -> RunBegun:
    """Check the source, fix the run's upper bound, claim the watermark, record the run."""
    keyset = job.source.keyset()
    source = job.source.sql_source()
    try:
        source.fetch_rows(probe_statement(keyset))
        bound = upper_bound_from(
            keyset, source.fetch_value(upper_bound_statement(keyset)), job.source.lag
        )
    except SourceError as error:
        raise SyncRunError(job.name, error.code, error.message) from None
    watermark = state.watermarks.claim(
        job.name, keyset.cursor_kind, job.source.initial_position, run_id
    )
    codec = job.source.codec
    stored_bound = codec.stored_bound(bound)
    start = codec.stored_position(watermark.position)
    state.runs.record(
        job.name, run_id, started_at, Outcome="running", Pages=0, Rows=0,
        UpperBound=str(stored_bound.value), StartCursor=str(start.cursor), StartKey=start.key,
    )
    log.info("sync job %s: run %s began after %s, upper bound %s",
             job.name, run_id, start, stored_bound.value)
    return RunBegun(stored_bound, start)


def end_run(
    job: SyncJob, state: SyncState, run_id: str, started_at: datetime, outcome: RunOutcome,
    totals: RunTotals, error: str | None = None,
) -> None:
    """Record how the run ended and release the lease (held for at least the min interval).

    The totals are those checkpointed with the watermark while the run owns it: exact even
    when a page's result never reached the orchestration (crash, takeover, failed page).
    """
    now = utc_now()
    watermark = state.watermarks.read(job.name, job.source.cursor_kind,
                                      job.source.initial_position)
    if watermark.run_id == run_id:
        totals = watermark.totals
    state.runs.record(
        job.name, run_id, started_at, Outcome=outcome.value, EndedAt=now,
        Pages=totals.pages, Rows=totals.rows, Delivered=totals.delivered,
        DeadLettered=totals.dead_lettered, Error=error or "",
    )
    state.lease.release(job.name, run_id, now, job.min_interval)
    if outcome is RunOutcome.SUCCEEDED:
        log.info("sync job %s: run %s succeeded: %s", job.name, run_id, totals)
    else:
        log.error("sync job %s: run %s %s: %s", job.name, run_id, outcome.value, error)
