"""Runs a sync job's steps in order, as the orchestration does, without a Functions host.

The orchestration (orchestrators/sync/orchestration.py) is a loop over the same three
shared steps; this drives those steps directly so that the domain tests exercise real
SQL, Table Storage and sinks quickly.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from shared.sync import run_plan
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import RunInput, RunOutcome
from shared.sync.pages import DEFAULT_BUDGET, PageBudget, sync_pages
from shared.sync.run import begin_run, end_run
from shared.sync.sinks import Sink
from shared.sync.starter import new_run_id
from shared.sync.state import SyncState


def run_once(
    job: SyncJob, state: SyncState, sink: Sink, run_id: str | None = None,
    max_pages: int | None = None, budget: PageBudget = DEFAULT_BUDGET,
) -> RunInput:
    """One run to its end (or `max_pages`), one `sync_pages` call per `budget`; returns
    the run's input with its totals."""
    run_id = run_id or new_run_id()
    started = datetime.now(UTC)
    run = RunInput(job.name, run_id, started, page_attempts=1, page_retry_delay=0,
                   pages_per_generation=job.pages_per_generation)
    try:
        begun = begin_run(job, state, run_id, started)
        run = replace(run, upper_bound=begun.upper_bound)
        pages = 0
        while max_pages is None or pages < max_pages:
            left = budget.pages if max_pages is None else min(budget.pages, max_pages - pages)
            result = sync_pages(job, state, sink, run_id, begun.upper_bound,
                                PageBudget(budget.seconds, left))
            run = run_plan.add_pages(run, result)
            pages += result.pages
            if result.done:
                break
    except SyncRunError as error:
        end_run(job, state, run_id, started, RunOutcome.FAILED, run.totals, str(error))
        raise
    end_run(job, state, run_id, started, RunOutcome.SUCCEEDED, run.totals)
    return run
