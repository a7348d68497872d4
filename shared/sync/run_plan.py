"""The run orchestration's bookkeeping as pure functions: its input, its progress, retries.

The orchestration's input (`RunInput`) carries only names, ids, times, counts and the
upper bound as text: never a row, never a secret.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime, timedelta
from typing import Any

from shared.config import SyncSettings
from shared.sync.job import SyncJob
from shared.sync.messages import PagesRequest, PagesResult, PartitionProgress, RunInput

MAX_RETRY_DELAY = timedelta(minutes=5)
# The first look at a backlog's jobs: parts submitted while staging may have ended already.
FIRST_BACKLOG_POLL_SECONDS = 0.5


def new_run_input(job: SyncJob, settings: SyncSettings, run_id: str,
                  started_at: datetime) -> RunInput:
    return RunInput(
        job.name, run_id, started_at, page_attempts=settings.page_attempts,
        page_retry_delay=settings.page_retry_delay,
        pages_per_generation=job.pages_per_generation,
        activity_budget=settings.activity_budget, pages_per_activity=settings.pages_per_activity,
        backlog_poll_interval=settings.backlog_poll_interval, waits_for_recorded_jobs=True,
        partitions=job.partitions, ends_with_join=True,
    )


def add_pages(run: RunInput, result: PagesResult) -> RunInput:
    """The run after a page activity: its totals are the ones checkpointed with the
    watermark, so pages whose result was lost (a redelivered activity) still count."""
    return dataclasses.replace(run, totals=result.totals)


def unfinished_partitions(run: RunInput) -> list[int]:
    """The partitions still to sync (all of them before the first round)."""
    if not run.partition_progress:
        return list(range(run.partitions))
    return [index for index, progress in enumerate(run.partition_progress)
            if not progress.done]


def partition_requests(run: RunInput) -> list[PagesRequest]:
    """One page activity's request for each partition still to sync."""
    assert run.upper_bound is not None
    return [PagesRequest(run.job, run.run_id, run.upper_bound, run.activity_budget,
                         run.pages_per_activity, partition=index, partitions=run.partitions)
            for index in unfinished_partitions(run)]


def add_partition_pages(run: RunInput, results: dict[int, PagesResult]) -> RunInput:
    """The run after a round of partition activities (a failed one is left out): each
    partition's totals are the ones checkpointed with its position; the run's, those
    before the partitions plus theirs."""
    progress = list(run.partition_progress) or [PartitionProgress()] * run.partitions
    before = run.totals_before_partitions if run.partition_progress else run.totals
    for index, result in results.items():
        progress[index] = PartitionProgress(result.totals, result.done)
    totals = functools.reduce(lambda total, part: total.plus(part.totals), progress, before)
    return dataclasses.replace(run, partition_progress=tuple(progress),
                               totals_before_partitions=before, totals=totals)


def next_generation(run: RunInput) -> RunInput:
    return dataclasses.replace(run, generation=run.generation + 1)


def retry_delay(run: RunInput, failed_attempts: int) -> timedelta | None:
    """Delay before the next try of a page after `failed_attempts` tries; None: give up."""
    if failed_attempts >= run.page_attempts:
        return None
    delay = timedelta(seconds=run.page_retry_delay * 2 ** (failed_attempts - 1))
    return min(delay, MAX_RETRY_DELAY)


def backlog_poll_delay(run: RunInput, polls_done: int) -> timedelta:
    """Wait before the next check of a backlog's jobs: soon after staging, then doubling
    up to the poll interval (a long load is checked every interval)."""
    first = min(FIRST_BACKLOG_POLL_SECONDS, run.backlog_poll_interval)
    return timedelta(seconds=min(run.backlog_poll_interval,
                                 first * 2 ** min(polls_done, 30)))


def custom_status(run: RunInput, phase: str, rows_loaded: int = 0) -> dict[str, Any]:
    """What the monitoring API shows while a run executes (small, no secrets). `rows`:
    the rows checkpointed, or, while Bulk API jobs load a backlog, those they processed."""
    status: dict[str, Any] = {
        "job": run.job, "run_id": run.run_id, "started_at": run.started_at.isoformat(),
        "phase": phase, "generation": run.generation, **run.totals.to_json(),
    }
    status["rows"] += rows_loaded
    return status
