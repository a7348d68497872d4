"""Pipeline 2 of the event drain, the one a drain started by this version runs (the steps
are listed on `event_drain`, orchestrators/events.py): a batch taken and staged in one
activity, run as a sub-orchestration, then settled in one activity that also takes and
stages the next; the batch's references kept beside its instance, never in history.
"""

from __future__ import annotations

import azure.durable_functions as df

from activities.events import EVENT_DRAIN_SETTLE_AND_ADVANCE, EVENT_DRAIN_TAKE_AND_STAGE
from orchestrators.event_drain_steps import ACTIVITY_RETRY, Steps, finish_drain, report_drain
from shared.batch import BATCH_ORCHESTRATOR, batch_durable_id
from shared.events.asset_events_job import JOB_NAME as ASSET_EVENTS_JOB
from shared.events.batch_processing import failed_batch, processed_batch
from shared.events.messages import (
    DrainRun,
    EventKey,
    ProcessedBatch,
    SettleAdvanceRequest,
    SettleAdvanceResult,
    SettleBatchResult,
    StagedBatch,
    TakeStageRequest,
)


def drain_pipeline_2(context: df.DurableOrchestrationContext, run: DrainRun) -> Steps:
    """Up to `batches_per_generation` batches, then continue_as_new; finish when nothing
    is due and nothing was posted since the last look."""
    staged = yield from _take_and_stage(context, run)
    for number in range(1, run.batches_per_generation + 1):
        if staged.nothing_due:
            finish = yield from finish_drain(context, run)
            if finish.finished:
                report_drain(context, run, "finished")
                return run.to_json()
            break
        take_next = number < run.batches_per_generation
        if staged.events == 0:  # every event taken was stale: the take dropped them
            run = run.after_batch(staged.cursor, SettleBatchResult(), staged.stale)
            if take_next:
                staged = yield from _take_and_stage(context, run)
            continue
        processed = yield from _run_batch(context, run, staged)
        answer = yield from _settle_and_advance(context, run, staged, processed, take_next)
        run = run.after_batch(staged.cursor, answer.settled, staged.stale)
        if answer.finished:
            report_drain(context, run, "finished")
            return run.to_json()
        if answer.next is None:
            break
        staged = answer.next
    report_drain(context, run, "continuing")
    context.continue_as_new(run.next_generation().to_json())
    return None


def _take_and_stage(context: df.DurableOrchestrationContext, run: DrainRun) -> Steps:
    report_drain(context, run, "taking")
    answer = yield context.call_activity_with_retry(
        EVENT_DRAIN_TAKE_AND_STAGE, ACTIVITY_RETRY,
        _take_request(context, run, 1, run.cursor).to_json())
    return StagedBatch.from_json(answer)


def _take_request(context: df.DurableOrchestrationContext, run: DrainRun, ahead: int,
                  after: EventKey | None) -> TakeStageRequest:
    """The take of the run's next batch (`ahead` 1) or the one after it (2), after `after`."""
    return TakeStageRequest(run.batch_instance_id(ahead), run.batch_size, after,
                            context.current_utc_datetime)


def _run_batch(context: df.DurableOrchestrationContext, run: DrainRun,
               staged: StagedBatch) -> Steps:
    report_drain(context, run, "processing", staged.instance_id)
    if staged.run is None:
        raise ValueError(f"batch {staged.instance_id} has {staged.events} events and no "
                         "staged instance")
    try:
        result = yield context.call_sub_orchestrator(
            BATCH_ORCHESTRATOR, staged.run.to_json(),
            batch_durable_id(ASSET_EVENTS_JOB, staged.instance_id))
    except Exception:  # the instance failed: its events are tried again, or dead-lettered
        return failed_batch(staged.instance_id)
    return processed_batch(staged.instance_id, result)


def _settle_and_advance(context: df.DurableOrchestrationContext, run: DrainRun,
                        staged: StagedBatch, processed: ProcessedBatch,
                        take_next: bool) -> Steps:
    report_drain(context, run, "settling", staged.instance_id)
    answer = yield context.call_activity_with_retry(
        EVENT_DRAIN_SETTLE_AND_ADVANCE, ACTIVITY_RETRY, SettleAdvanceRequest(
            run.run_id, processed, run.max_attempts, run.retry_delay,
            context.current_utc_datetime, finish_if_quiet=not staged.full,
            next=_take_request(context, run, 2, staged.cursor) if take_next else None,
        ).to_json())
    return SettleAdvanceResult.from_json(answer)
