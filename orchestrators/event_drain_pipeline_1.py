"""Pipeline 1 of the event drain: take, stage, process, settle and finish with an activity
each, the batch's references in history. Only a drain started before pipeline 2 runs it,
replaying its history until its next generation (shared/events/messages.py, PIPELINE);
it can go once no such drain can be in flight.
"""

from __future__ import annotations

import azure.durable_functions as df

from activities.events import (
    EVENT_DRAIN_SETTLE_BATCH,
    EVENT_DRAIN_STAGE_BATCH,
    EVENT_DRAIN_TAKE_BATCH,
)
from orchestrators.event_drain_steps import ACTIVITY_RETRY, Steps, finish_drain, report_drain
from shared.batch import BATCH_ORCHESTRATOR, batch_durable_id
from shared.events.asset_events_job import JOB_NAME as ASSET_EVENTS_JOB
from shared.events.batch_processing import failed_batch, processed_batch
from shared.events.messages import (
    DrainRun,
    EventRef,
    ProcessedBatch,
    SettleBatchRequest,
    SettleBatchResult,
    StageBatchRequest,
    StageBatchResult,
    TakeBatchRequest,
    TakeBatchResult,
)


def drain_pipeline_1(context: df.DurableOrchestrationContext, run: DrainRun) -> Steps:
    """Take, stage, process, settle and finish with an activity each; the batch's
    references in history."""
    for _ in range(run.batches_per_generation):
        batch = yield from _take_batch(context, run)
        if not batch.events and batch.stale == 0:
            finish = yield from finish_drain(context, run)
            if finish.finished:
                report_drain(context, run, "finished")
                return run.to_json()
            break
        settled = SettleBatchResult()
        if batch.events:
            processed = yield from _process_batch(context, run, batch.events)
            settled = yield from _settle_batch(context, run, batch.events, processed)
        run = run.after_batch(batch.cursor, settled, batch.stale)
    report_drain(context, run, "continuing")
    context.continue_as_new(run.next_generation().to_json())
    return None


def _take_batch(context: df.DurableOrchestrationContext, run: DrainRun) -> Steps:
    report_drain(context, run, "taking")
    answer = yield context.call_activity_with_retry(
        EVENT_DRAIN_TAKE_BATCH, ACTIVITY_RETRY,
        TakeBatchRequest(run.batch_size, run.cursor, context.current_utc_datetime).to_json())
    return TakeBatchResult.from_json(answer)


def _process_batch(context: df.DurableOrchestrationContext, run: DrainRun,
                   events: list[EventRef]) -> Steps:
    instance_id = run.batch_instance_id()
    report_drain(context, run, "processing", instance_id)
    answer = yield context.call_activity_with_retry(
        EVENT_DRAIN_STAGE_BATCH, ACTIVITY_RETRY, StageBatchRequest(instance_id, events).to_json())
    staged = StageBatchResult.from_json(answer)
    try:
        result = yield context.call_sub_orchestrator(
            BATCH_ORCHESTRATOR, staged.run.to_json(),
            batch_durable_id(ASSET_EVENTS_JOB, instance_id))
    except Exception:  # the instance failed: its events are tried again, or dead-lettered
        return failed_batch(instance_id)
    return processed_batch(instance_id, result)


def _settle_batch(context: df.DurableOrchestrationContext, run: DrainRun,
                  events: list[EventRef], processed: ProcessedBatch) -> Steps:
    report_drain(context, run, "settling")
    answer = yield context.call_activity_with_retry(
        EVENT_DRAIN_SETTLE_BATCH, ACTIVITY_RETRY,
        SettleBatchRequest(events, processed, run.max_attempts, run.retry_delay,
                           context.current_utc_datetime).to_json())
    return SettleBatchResult.from_json(answer)
