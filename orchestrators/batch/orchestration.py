"""The `batch_job` orchestration: one durable orchestration per batch job instance.

It only decides (shared/batch/plan.py): blocks and aggregator groups run as activities
(activities/batch.py), and its custom status is the instance's live BatchJobResult. No
clock but `context.current_utc_datetime`.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from activities.batch import (
    BATCH_CHECK_TURN,
    BATCH_COMMIT_GROUP,
    BATCH_FINISH,
    BATCH_RECORD_STATUS,
    BATCH_RUN_SEGMENT,
    BATCH_WAKE_SUCCESSOR,
    TURN_EVENT,
)
from shared.batch import batch_jobs
from shared.batch.job import BatchJob, SchedulingStrategy
from shared.batch.messages import (
    CommitRequest,
    CommitResult,
    FinishAnswer,
    FinishRequest,
    SegmentRequest,
    SegmentResult,
    StatusRecord,
    TurnAnswer,
    TurnRequest,
    WakeRequest,
)
from shared.batch.plan import BatchStatus, BlockPlan, RunInput, RunProgress
from shared.batch.result import batch_job_result

blueprint = df.Blueprint()


@blueprint.orchestration_trigger(context_name="context")
def batch_job(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any] | None]:
    """One generation of an instance; its BatchJobResult once it completed.

    1. wait for the instance's turn (ORDERED_SEQUENTIAL: older instances ended), then
       record it EXECUTING
    2. process the blocks (at most max_concurrency activities at once); continue_as_new
       every BATCH_BLOCKS_PER_GENERATION blocks at a quiescent point
    3. on complete: failure report, the job's hook, final result; wake the next instance
    """
    run = RunInput.from_json(context.get_input())
    job = batch_jobs()[run.progress.job]
    retry = df.RetryOptions(
        first_retry_interval_in_milliseconds=max(1, int(run.activity_retry_delay * 1000)),
        max_number_of_attempts=run.activity_attempts)
    progress = run.progress
    # 1. the instance's turn
    if not progress.turn_taken:
        if job.scheduling_strategy is SchedulingStrategy.ORDERED_SEQUENTIAL:
            yield from wait_for_turn(context, job, progress, run, retry)
        progress = RunProgress.from_json({**progress.to_json(), "turn_taken": True})
        yield context.call_activity_with_retry(BATCH_RECORD_STATUS, retry, StatusRecord(
            job.name, progress.instance_id, BatchStatus.EXECUTING.value,
            json.dumps(_result(context, job, progress, BatchStatus.EXECUTING))).to_json())
    # 2. process the blocks
    plan = BlockPlan.resume(job, progress, run.blocks_per_generation)
    yield from process_blocks(context, job, plan, retry)
    if not plan.finished:
        context.continue_as_new(RunInput.from_json(
            {**run.to_json(), "progress": plan.next_generation().to_json()}).to_json())
        return None
    # 3. on complete
    return (yield from complete(context, job, plan, retry))


def wait_for_turn(context: df.DurableOrchestrationContext, job: BatchJob,
                  progress: RunProgress, run: RunInput,
                  retry: df.RetryOptions) -> Generator[Any, Any, None]:
    """Until the older instances of the job ended: woken by the predecessor's end, or by
    the timer that re-checks in case that wake-up was lost."""
    while True:
        answer = TurnAnswer.from_json((yield context.call_activity_with_retry(
            BATCH_CHECK_TURN, retry, TurnRequest(job.name, progress.instance_id).to_json())))
        if answer.is_mine:
            return
        waiting = _result(context, job, progress, BatchStatus.EXECUTABLE)
        context.set_custom_status({**waiting, "waitingFor": answer.waiting_for})
        timer = context.create_timer(context.current_utc_datetime
                                     + timedelta(seconds=run.turn_check_interval))
        woken = context.wait_for_external_event(TURN_EVENT)
        winner = yield context.task_any([timer, woken])
        if winner is not timer:
            # create_timer is annotated TaskBase; it returns a TimerTask, which can cancel.
            timer.cancel()  # type: ignore[attr-defined]


def process_blocks(context: df.DurableOrchestrationContext, job: BatchJob, plan: BlockPlan,
                   retry: df.RetryOptions) -> Generator[Any, Any, None]:
    """Run activities as the plan asks, never more than max_concurrency at once."""
    in_flight: dict[Any, SegmentRequest | CommitRequest] = {}
    while True:
        for request in plan.next_requests(len(in_flight)):
            name = BATCH_RUN_SEGMENT if isinstance(request, SegmentRequest) else BATCH_COMMIT_GROUP
            in_flight[context.call_activity_with_retry(name, retry, request.to_json())] = request
        if not in_flight:
            return
        context.set_custom_status(_result(context, job, plan.carried(), BatchStatus.EXECUTING))
        done = yield context.task_any(list(in_flight))
        request = in_flight.pop(done)
        if isinstance(done.result, Exception):
            raise done.result
        if isinstance(request, SegmentRequest):
            plan.record_segment(SegmentResult.from_json(done.result))
        else:
            plan.record_commit(CommitResult.from_json(done.result))


def complete(context: df.DurableOrchestrationContext, job: BatchJob, plan: BlockPlan,
             retry: df.RetryOptions) -> Generator[Any, Any, dict[str, Any]]:
    """The on-complete phase: the finish activity (report, hook, row), then the next
    instance of an ordered job woken; the final result."""
    progress = plan.carried()
    result = _result(context, job, progress, plan.status)
    # The instance executes until its on-complete phase ended (Mule's order).
    context.set_custom_status({**result, "status": BatchStatus.EXECUTING.value})
    answer = FinishAnswer.from_json((yield context.call_activity_with_retry(
        BATCH_FINISH, retry,
        FinishRequest(job.name, progress.instance_id, json.dumps(result)).to_json())))
    result["failedOnCompletePhase"] = answer.failed_on_complete
    if answer.successor and job.scheduling_strategy is SchedulingStrategy.ORDERED_SEQUENTIAL:
        yield context.call_activity_with_retry(BATCH_WAKE_SUCCESSOR, retry,
                                               WakeRequest(answer.successor).to_json())
    context.set_custom_status(result)
    return result


def _result(context: df.DurableOrchestrationContext, job: BatchJob, progress: RunProgress,
            status: BatchStatus) -> dict[str, Any]:
    return batch_job_result(job, progress, status, context.current_utc_datetime)
