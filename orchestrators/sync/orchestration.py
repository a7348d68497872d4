"""The `sync_run` orchestration: one run of a sync job, as the numbered steps its
docstring lists, each a sub-generator here (no I/O: activities do it)."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from dataclasses import replace
from typing import Any

import azure.durable_functions as df

from activities.sync import (
    SYNC_BEGIN_RUN,
    SYNC_END_PARTITIONED_RUN,
    SYNC_END_RUN,
    SYNC_FINISH_BACKLOG,
    SYNC_JOIN_PARTITIONS,
    SYNC_PAGES,
    SYNC_POLL_BACKLOG,
    SYNC_SETTLE_EARLIER_JOBS,
    SYNC_STAGE_BACKLOG,
    SYNC_SUBMIT_BACKLOG_PART,
)
from shared.bulkload.messages import JobSnapshot
from shared.bulkload.progress import merge_jobs, running_job_ids
from shared.durable import one_line
from shared.sync import run_plan
from shared.sync.messages import (
    BacklogFinishRequest,
    BacklogJobs,
    BacklogJobsRequest,
    BacklogPartRequest,
    BacklogRequest,
    BacklogStaged,
    BacklogStop,
    BeginRunRequest,
    EarlierJobsRunning,
    EndPartitionedRunRequest,
    EndRunRequest,
    JoinPartitionsRequest,
    PagesRequest,
    PagesResult,
    RunBegun,
    RunInput,
    RunOutcome,
    StepFailure,
)

blueprint = df.Blueprint()

Steps = Generator[Any, Any, Any]


class SyncRunFailed(Exception):
    """The run ended in failure; the message names the job and the cause."""


@blueprint.orchestration_trigger(context_name="context")
def sync_run(context: df.DurableOrchestrationContext) -> Steps:
    """One run of a sync job, `pages_per_generation` page activities per generation:

    1. begin (first generation only): check the source, fix the run's upper bound, claim
       the watermark, count the changed rows up to the backlog threshold; a failure ends
       the run (3) as failed; then wait (durable timers) until the Bulk API jobs a failed
       run left running ended, so that none writes an older value after this run's
    2. sync pages: each activity works through pages for its time budget or page count,
       checkpointing as it goes; one that failed as a whole is retried after a
       durable-timer backoff, then ends the run as failed
       2b. or, when more rows than the backlog threshold wait: load them with Bulk API 2.0
       (stage CSV parts, each part's upsert job submitted as soon as it is written; poll
       with durable timers, soon and then backing off; dead-letter the failures, then
       advance the watermark once the jobs an earlier, crashed attempt of the stage left
       running ended too), in rounds; a round that stopped before a record's second
       change leaves the rest of the run to the pages (2)
       2c. or, with key partitions (the job's partitions setting above 1): rounds of one
       page activity per partition not done yet, side by side, each from its own
       checkpointed position; a round where one failed as a whole is tried again after
       the durable-timer backoff, then ends the run as failed; once every partition
       reached the run's end, the watermark moves past them all and the run ends (3) in
       the same activity (join, tried again after the backoff when storage refused it;
       a run started by an earlier version joins, then ends, in two)
    3. end after the last page: record the outcome and totals, release the lease
    4. or, after `pages_per_generation` activities (or rounds), continue as new with the
       totals so far
    """
    run = RunInput.from_json(context.get_input())
    if run.upper_bound is None:
        run, begun = yield from _begin(context, run)
        yield from _wait_for_earlier_jobs(context, run, (), begun.earlier_jobs)
        if begun.backlog:
            run, rows_left = yield from _load_backlog(context, run)
            if not rows_left:
                yield from _end(context, run, RunOutcome.SUCCEEDED, None)
                return run.totals.to_json()
    for _activity in range(run.pages_per_generation):
        if run.partitions > 1:
            run, done = yield from _sync_partitions(context, run)
            if done and run.ends_with_join:  # joined and ended (3) in one activity
                context.set_custom_status(run_plan.custom_status(
                    run, RunOutcome.SUCCEEDED.value))
                return run.totals.to_json()
        else:
            pages = yield from _sync_pages(context, run)
            run, done = run_plan.add_pages(run, pages), pages.done
        if done:
            yield from _end(context, run, RunOutcome.SUCCEEDED, None)
            return run.totals.to_json()
    context.continue_as_new(run_plan.next_generation(run).to_json())
    return None


def _begin(context: df.DurableOrchestrationContext, run: RunInput) -> Steps:
    """1. The run's upper bound; the watermark is the run's from now on."""
    context.set_custom_status(run_plan.custom_status(run, "beginning"))
    try:
        answer = yield context.call_activity(
            SYNC_BEGIN_RUN,
            BeginRunRequest(run.job, run.run_id, run.started_at, run.partitions).to_json())
        begun = RunBegun.from_json(answer)
    except Exception as error:  # an activity that raised: the run must still be recorded
        begun = RunBegun(failure=_activity_failure(run, "begin", error))
    if begun.failure is not None:
        yield from _end(context, run, RunOutcome.FAILED, begun.failure.error)
        raise SyncRunFailed(begun.failure.error)
    return replace(run, upper_bound=begun.upper_bound), begun


def _sync_pages(context: df.DurableOrchestrationContext, run: RunInput) -> Steps:
    """2. The next pages, delivered and checkpointed, tried again while they may pass."""
    assert run.upper_bound is not None
    failed_attempts = 0
    request = PagesRequest(run.job, run.run_id, run.upper_bound, run.activity_budget,
                           run.pages_per_activity)
    while True:
        context.set_custom_status(run_plan.custom_status(run, "syncing"))
        try:
            answer = yield context.call_activity(SYNC_PAGES, request.to_json())
            page = PagesResult.from_json(answer)
        except Exception as error:
            page = PagesResult(failure=_activity_failure(run, "page", error))
        if page.failure is None:
            return page
        failed_attempts += 1
        yield from _wait_to_retry(context, run, page.failure, failed_attempts)


def _sync_partitions(context: df.DurableOrchestrationContext, run: RunInput) -> Steps:
    """2c. A round of pages in key partitions, tried again while it may pass; the run and
    whether every partition is done (then joined)."""
    failed_attempts = 0
    while True:
        context.set_custom_status(run_plan.custom_status(run, "syncing partitions"))
        requests = run_plan.partition_requests(run)
        results = yield from _partition_round(context, run, requests)
        run = run_plan.add_partition_pages(run, {
            request.partition: result for request, result in zip(requests, results, strict=True)
            if request.partition is not None and result.failure is None})
        failures = [result.failure for result in results if result.failure is not None]
        if not failures:
            if run_plan.unfinished_partitions(run):
                return run, False
            return (yield from _join_partitions(context, run)), True
        failed_attempts += 1
        yield from _wait_to_retry(context, run, replace(
            failures[0], retryable=all(failure.retryable for failure in failures)),
            failed_attempts)


def _partition_round(context: df.DurableOrchestrationContext, run: RunInput,
                     requests: list[PagesRequest]) -> Steps:
    """2c. One page activity per request, side by side: each one's result, once every one
    ended. The SDK's task_all raises at the first activity that raised and drops the
    others' results: these are then read one by one (an ended one answers at once), so a
    partition that reached the end is not asked again and the run's totals count it. (The
    Durable extension calls the orchestrator again only once all of them ended, as .NET's
    Task.WhenAll; were it called sooner, this still waits for every one.)"""
    tasks = [context.call_activity(SYNC_PAGES, request.to_json()) for request in requests]
    with contextlib.suppress(Exception):  # one raised: the others are read one by one
        answers = yield context.task_all(tasks)
        return [PagesResult.from_json(answer) for answer in answers]
    results = []
    for task in tasks:
        try:  # an activity that ended already answers at once, on replay too
            results.append(PagesResult.from_json((yield task)))
        except Exception as error:
            results.append(PagesResult(failure=_activity_failure(run, "partition pages",
                                                                 error)))
    return results


def _join_partitions(context: df.DurableOrchestrationContext, run: RunInput) -> Steps:
    """2c. Every partition reached the run's end: the watermark past them all, and (a run
    that `ends_with_join`) the run's end (3) in the same activity; a join storage refused
    is tried again after the backoff, as a page's checkpoint is."""
    failed_attempts = 0
    activity, request = (
        (SYNC_END_PARTITIONED_RUN, EndPartitionedRunRequest(run.job, run.run_id,
                                                            run.started_at, run.partitions))
        if run.ends_with_join else
        (SYNC_JOIN_PARTITIONS, JoinPartitionsRequest(run.job, run.run_id, run.partitions)))
    while True:
        context.set_custom_status(run_plan.custom_status(run, "joining partitions"))
        joined = yield from _call(context, run, activity, PagesResult, request)
        if joined.failure is None:
            return run_plan.add_pages(run, joined)
        failed_attempts += 1
        yield from _wait_to_retry(context, run, joined.failure, failed_attempts)


def _wait_to_retry(context: df.DurableOrchestrationContext, run: RunInput,
                   failure: StepFailure, failed_attempts: int) -> Steps:
    """After a step failed as a whole: a durable-timer backoff while a later try may pass;
    else the run ends as failed (3)."""
    delay = run_plan.retry_delay(run, failed_attempts) if failure.retryable else None
    if delay is None:
        yield from _end(context, run, RunOutcome.FAILED, failure.error)
        raise SyncRunFailed(failure.error)
    context.set_custom_status(run_plan.custom_status(run, "waiting to retry"))
    yield context.create_timer(context.current_utc_datetime + delay)


def _load_backlog(context: df.DurableOrchestrationContext, run: RunInput) -> Steps:
    """2b. The changed rows through Bulk API 2.0 upsert jobs in rounds, each after the jobs
    of the one before ended; and whether rows are left for pages (a round stopped before a
    record's second change: pages write the changes of one record in order)."""
    while True:
        run, stopped = yield from _load_backlog_round(context, run)
        if stopped is not BacklogStop.NEXT_ROUND:
            return run, stopped is BacklogStop.RECORD_AGAIN


def _load_backlog_round(context: df.DurableOrchestrationContext, run: RunInput) -> Steps:
    """2b. Rows through Bulk API 2.0 upsert jobs, then the watermark past them."""
    assert run.upper_bound is not None
    context.set_custom_status(run_plan.custom_status(run, "staging for Bulk API"))
    staged = yield from _call(context, run, SYNC_STAGE_BACKLOG, BacklogStaged,
                              BacklogRequest(run.job, run.run_id, run.upper_bound))
    yield from _stop_if_failed(context, run, staged.failure)
    jobs = list(staged.jobs)
    for blob in staged.parts:  # staged by an earlier version: parts not yet submitted
        submitted = yield from _call(context, run, SYNC_SUBMIT_BACKLOG_PART, BacklogJobs,
                                     BacklogPartRequest(run.job, run.run_id, blob))
        yield from _stop_if_failed(context, run, submitted.failure)
        jobs += submitted.jobs
    polls = failed_polls = 0
    while not all(job.ended for job in jobs):
        context.set_custom_status(run_plan.custom_status(
            run, "waiting for Bulk API jobs", sum(job.processed for job in jobs)))
        yield context.create_timer(
            context.current_utc_datetime + run_plan.backlog_poll_delay(run, polls))
        polls += 1
        polled = yield from _call(context, run, SYNC_POLL_BACKLOG, BacklogJobs,
                                  BacklogJobsRequest(run.job, run.run_id,
                                                     running_job_ids(jobs)))
        if polled.failure is not None:  # Salesforce unreachable for a while: poll again
            failed_polls += 1
            if failed_polls >= run.page_attempts:
                yield from _stop_if_failed(context, run, polled.failure)
            continue
        failed_polls, jobs = 0, merge_jobs(jobs, polled.jobs)
    yield from _wait_for_earlier_jobs(context, run, jobs)
    context.set_custom_status(run_plan.custom_status(run, "reading Bulk API results"))
    finished = yield from _call(context, run, SYNC_FINISH_BACKLOG, PagesResult,
                                BacklogFinishRequest(run.job, run.run_id,
                                                     replace(staged, jobs=()), tuple(jobs)))
    yield from _stop_if_failed(context, run, finished.failure)
    return run_plan.add_pages(run, finished), staged.stopped


def _wait_for_earlier_jobs(context: df.DurableOrchestrationContext, run: RunInput,
                           own: list[JobSnapshot] | tuple[()],
                           earlier: EarlierJobsRunning | None = None) -> Steps:
    """Until no Bulk API job recorded by an earlier attempt or run (other than `own`) is
    running: one of a crashed stage, or of a run that failed, could else write an older
    value after the newer ones this run writes next. `earlier`: the first answer, when
    the step before gave it. The answer is a count: history stays small however many
    jobs there were."""
    if not run.waits_for_recorded_jobs:
        return
    request = BacklogJobsRequest(run.job, run.run_id, tuple(job.id for job in own))
    polls = failed_polls = 0
    while True:
        if earlier is None:
            earlier = yield from _call(context, run, SYNC_SETTLE_EARLIER_JOBS,
                                       EarlierJobsRunning, request)
        if earlier.failure is not None:  # Salesforce unreachable for a while: ask again
            failed_polls += 1
            if failed_polls >= run.page_attempts:
                yield from _stop_if_failed(context, run, earlier.failure)
        elif earlier.running == 0:
            return
        else:
            failed_polls = 0
        context.set_custom_status(run_plan.custom_status(
            run, "waiting for Bulk API jobs of an earlier attempt"))
        yield context.create_timer(
            context.current_utc_datetime + run_plan.backlog_poll_delay(run, polls))
        polls, earlier = polls + 1, None


def _call(context: df.DurableOrchestrationContext, run: RunInput, activity: str,
          result: Any, request: Any) -> Steps:
    """An activity's result message; an activity that raised is a failure of the step."""
    try:
        return result.from_json((yield context.call_activity(activity, request.to_json())))
    except Exception as error:
        return result(failure=_activity_failure(run, activity, error))


def _activity_failure(run: RunInput, step: str, error: Exception) -> StepFailure:
    """An activity that raised, in one line: its text carries the activity's serialized
    stack trace, and the run's error is answered by the status endpoint."""
    return StepFailure("ACTIVITY_FAILED",
                       f"sync job {run.job!r}: {step} failed: {one_line(str(error))}")


def _stop_if_failed(context: df.DurableOrchestrationContext, run: RunInput,
                    failure: StepFailure | None) -> Steps:
    if failure is not None:
        yield from _end(context, run, RunOutcome.FAILED, failure.error)
        raise SyncRunFailed(failure.error)


def _end(context: df.DurableOrchestrationContext, run: RunInput, outcome: RunOutcome,
         error: str | None) -> Steps:
    """3. The run's row says how it ended; the lease is released."""
    context.set_custom_status(run_plan.custom_status(run, outcome.value))
    yield context.call_activity(SYNC_END_RUN, EndRunRequest(
        run.job, run.run_id, run.started_at, outcome, run.totals, error).to_json())
