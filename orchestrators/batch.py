"""Batch jobs (seed 004): Mule-Batch semantics, one durable orchestration per instance.

    POST /api/batch-jobs/{job}[?instanceId=]  Load & dispatch: parse and check every record
        (400 problem+json naming each bad one), claim the instance id (409 if used or
        being staged: batch_start.py), stage the blocks in Blob Storage (all or nothing),
        then start `batch_job`; 202.
    batch_job:
        1. wait for the instance's turn (ORDERED_SEQUENTIAL: older instances ended)
        2. process: blocks through the steps, aggregator groups committed, at most
           max_concurrency activities at once (a sliding window over task_any);
           continue_as_new every BATCH_BLOCKS_PER_GENERATION blocks at a quiescent point
        3. on complete: failure report, the job's hook, final result; wake the next instance
    GET /api/batch-jobs/{job}[?limit=&after=]       a page of instances, newest first, with
                                                    status and counts
    GET /api/batch-jobs/{job}/{instanceId}          the BatchJobResult (live while running)
    GET /api/batch-jobs/{job}/{instanceId}/failures the failure report (CSV)
    batch_purge_finished (hourly timer)             rows of instances that ended without
        their finish step (failed, terminated) settled; finished instances past
        BATCH_INSTANCE_RETENTION, and STAGING ones that never started: row marked, blobs,
        orchestration history, row (shared/batch/retention.py)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from activities.batch import (
    BATCH_CHECK_TURN,
    BATCH_COMMIT_GROUP,
    BATCH_FINISH,
    BATCH_RECORD_STATUS,
    BATCH_RUN_SEGMENT,
    BATCH_WAKE_SUCCESSOR,
    TURN_EVENT,
    batch_store,
    instances_table,
    orchestration_reader,
)
from orchestrators.batch_start import (  # noqa: F401  (re-exported for other capabilities)
    INSTANCE_CLAIMED,
    INSTANCE_ID,
    BatchStartRefused,
    StartedInstance,
    source_stager,
    start_batch_instance,
    start_staged_instance,
)
from orchestrators.http import answers_failures, problem_response, request_path
from shared.answer_json import utc_text
from shared.batch import batch_durable_id, batch_jobs
from shared.batch.instances import PAGE_CURSOR, index_earlier_rows, instances_page
from shared.batch.job import BatchJob, SchedulingStrategy
from shared.batch.liveness import ended_outside, settle_listed_rows
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
from shared.batch.records import InputRejected, RecordError, media_type, parse_records
from shared.batch.result import batch_job_result
from shared.batch.retention import (
    purge_instances,
    purge_never_started,
    purgeable_instances,
    sweep_active_rows,
)
from shared.batch.source import (
    InvalidParams,
    bound_params,
    is_source_request,
    params_fingerprint,
    source_request_params,
)
from shared.batch.store import InstanceFolder
from shared.config import app_settings
from shared.durable import BUSY_STATES, read_status, runtime_state_of
from shared.problems import problem

blueprint = df.Blueprint()
log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Hourly, off the hour; each run purges at most this many instances per job (the next run
# goes on), so a backlog after a long retention change never makes one run long.
PURGE_SCHEDULE = "0 17 * * * *"
PURGE_LIMIT_PER_JOB = 500


# -- the orchestration ---------------------------------------------------------------------


@blueprint.orchestration_trigger(context_name="context")
def batch_job(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any] | None]:
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


# -- retention ---------------------------------------------------------------------------


@blueprint.timer_trigger(schedule=PURGE_SCHEDULE, arg_name="timer", run_on_startup=False)
@blueprint.durable_client_input(client_name="client")
async def batch_purge_finished(timer: func.TimerRequest,
                               client: df.DurableOrchestrationClient) -> None:
    """Instance rows written before index rows existed get theirs (once per job); active
    rows whose orchestration ended without its finish step are settled; then,
    past BATCH_INSTANCE_RETENTION, finished instances and those that never started go:
    row marked, blobs, history, row (shared/batch/retention.py)."""
    seconds = app_settings().batch.instance_retention
    retention = timedelta(seconds=seconds) if seconds > 0 else None
    table, store, now = instances_table(), batch_store(), datetime.now(UTC)
    for job in batch_jobs().values():
        await asyncio.to_thread(index_earlier_rows, table, job.name)
        never_started = await sweep_active_rows(table, store.container, job.name,
                                                orchestration_reader(client), now, retention)
        if retention is None:
            continue
        purged = await purge_never_started(table, store, store.container,
                                           never_started[:PURGE_LIMIT_PER_JOB],
                                           client.purge_instance_history, now)
        candidates = await asyncio.to_thread(purgeable_instances, table, job.name, now,
                                             retention, PURGE_LIMIT_PER_JOB)
        if candidates:
            purged += await purge_instances(table, store, candidates,
                                            client.purge_instance_history)
        if purged:
            log.info("batch %s: purged %d instance(s) finished (or never started) more "
                     "than %g s ago", job.name, purged, seconds)


# -- HTTP ----------------------------------------------------------------------------------------


@blueprint.route(route="batch-jobs/{job}", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def batch_job_start(req: func.HttpRequest,
                          client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Load & dispatch: every record checked, staged all or nothing, then started; 202."""
    where = request_path(req)
    job_name = req.route_params.get("job", "")
    if job_name not in batch_jobs():
        return problem_response(problem(404, "UNKNOWN_BATCH_JOB", "Unknown batch job",
                                        f"no batch job {job_name!r}", where))
    limit = app_settings().batch.max_body_bytes
    body = req.get_body()
    declared = req.headers.get("Content-Length") or ""
    size = max(len(body), int(declared) if declared.isdigit() else 0)
    if size > limit:
        return problem_response(problem(
            413, "BODY_TOO_LARGE", "Batch input too large",
            f"the body is {size} bytes; at most {limit} are accepted (BATCH_MAX_BODY_BYTES): "
            "split the records over several instances", where))
    instance_id = req.params.get("instanceId") or None
    try:
        if is_source_request(body, media_type(req.headers.get("Content-Type"))):
            started = await _start_from_source(client, job_name, body, instance_id, where)
        else:
            parsed = await asyncio.to_thread(parse_records, body,
                                             req.headers.get("Content-Type"))
            if isinstance(parsed, InputRejected):
                return _refused_input(parsed, where)
            started = StartedInstance(
                await start_batch_instance(client, job_name, parsed, instance_id, where),
                len(parsed))
    except BatchStartRefused as refused:
        return problem_response(refused.problem, refused.headers)
    status_url = req.url.split("?")[0].rstrip("/") + "/" + started.instance_id
    return func.HttpResponse(
        json.dumps({"batchJobInstanceId": started.instance_id, "jobName": job_name,
                    "totalRecords": started.total_records, "statusQueryGetUri": status_url}),
        status_code=202, mimetype="application/json",
        headers={"Location": status_url, "Retry-After": "5"})


def _refused_input(rejected: InputRejected, where: str) -> func.HttpResponse:
    return problem_response(problem(
        rejected.status, rejected.code, "Batch input refused", rejected.detail, where,
        errors=[error.to_json() for error in rejected.errors]))


async def _start_from_source(client: df.DurableOrchestrationClient, job_name: str,
                             body: bytes, instance_id: str | None,
                             where: str) -> StartedInstance:
    """`{"source": {"params": {...}}}`: the job's declared view, filtered by the params."""
    source = batch_jobs()[job_name].source
    if source is None:
        raise BatchStartRefused(problem(
            400, "NO_SOURCE", "Batch job has no source",
            f"batch job {job_name!r} declares no source to read records from: post the "
            "records (a JSON array, NDJSON or CSV)", where))
    try:
        params = source_request_params(body)
        values = bound_params(source, params)
    except InvalidParams as invalid:
        raise BatchStartRefused(problem(
            400, "INVALID_SOURCE_PARAMS", "Batch source parameters refused",
            f"{len(invalid.problems)} parameter problem(s); nothing was staged", where,
            errors=[RecordError(None, text).to_json() for text in invalid.problems])) from None
    except ValueError as error:
        raise BatchStartRefused(problem(400, "MALFORMED_INPUT", "Batch input refused",
                                        str(error), where)) from None
    return await start_staged_instance(client, job_name, params_fingerprint(params),
                                       source_stager(values, where), instance_id, where)


@blueprint.route(route="batch-jobs/{job}", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def batch_job_instances(req: func.HttpRequest,
                              client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The job's declaration and a page of its instances, newest first, with status and
    counts; `limit` (default 50, at most 200), `after` the `next` of the page before. A
    page reads its own rows only, however many instances the job has; an active one whose
    orchestration ended without its finish step (terminated, failed) is settled first."""
    where = request_path(req)
    job_name = req.route_params.get("job", "")
    job = batch_jobs().get(job_name)
    if job is None:
        return problem_response(problem(404, "UNKNOWN_BATCH_JOB", "Unknown batch job",
                                        f"no batch job {job_name!r}", where))
    limit_text = req.params.get("limit") or str(PAGE_SIZE)
    # isdigit() alone holds for '²', which int() refuses: ASCII digits only.
    if not (limit_text.isascii() and limit_text.isdigit()) \
            or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
        return problem_response(problem(
            400, "INVALID_QUERY", "Invalid query parameter",
            f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}", where))
    after = req.params.get("after")
    if after is not None and not PAGE_CURSOR.fullmatch(after):
        return problem_response(problem(
            400, "INVALID_QUERY", "Invalid query parameter",
            "after must be the `next` of an earlier page", where))
    table = instances_table()
    rows, following = await asyncio.to_thread(instances_page, table, job.name,
                                              int(limit_text), after)
    rows = await settle_listed_rows(table, batch_store().container, rows,
                                    orchestration_reader(client), datetime.now(UTC))
    listed = [{"batchJobInstanceId": row.instance_id, "status": row.status,
               "createdTime": utc_text(row.created),
               **{key: (row.result or {}).get(key) for key in (
                   "totalRecords", "processedRecords", "successfulRecords", "failedRecords",
                   "elapsedTimeInMillis")}}
              for row in rows]
    return func.HttpResponse(
        json.dumps({"jobName": job.name, "schedulingStrategy": job.scheduling_strategy.value,
                    "blockSize": job.block_size, "maxConcurrency": job.max_concurrency,
                    "maxFailedRecords": job.max_failed_records,
                    "steps": [step.name for step in job.steps], "instances": listed,
                    "next": following}),
        status_code=200, mimetype="application/json")


async def _requested_instance(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> tuple[BatchJob, str, DurableOrchestrationStatus] | func.HttpResponse:
    where = request_path(req)
    job = batch_jobs().get(req.route_params.get("job", ""))
    instance_id = req.route_params.get("instanceId", "")
    status = None
    if job is not None and INSTANCE_ID.fullmatch(instance_id):
        status = await read_status(client, batch_durable_id(job.name, instance_id))
    if job is None or not status or status.runtime_status is None:
        return problem_response(problem(404, "UNKNOWN_BATCH_INSTANCE",
                                        "Unknown batch job instance",
                                        f"no instance {instance_id!r} of batch job "
                                        f"{req.route_params.get('job', '')!r}", where))
    return job, instance_id, status


@blueprint.route(route="batch-jobs/{job}/{instanceId}", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def batch_job_result_get(req: func.HttpRequest,
                               client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The instance's BatchJobResult: live counts while it runs, the final one after."""
    found = await _requested_instance(req, client)
    if isinstance(found, func.HttpResponse):
        return found
    _job, instance_id, status = found
    state = runtime_state_of(status)
    result = status.output if state == "Completed" else status.custom_status
    if isinstance(result, str):
        result = json.loads(result)
    body = dict(result or {"batchJobInstanceId": instance_id,
                           "status": BatchStatus.EXECUTABLE.value})
    ended = ended_outside(state, batch_durable_id(_job.name, instance_id))
    if ended is not None and ended.status is not None and ended.reason is not None:
        body.update(status=ended.status.value, endReason=ended.reason.value,
                    endMessage=ended.message)
    body["runtimeStatus"] = state
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json",
                             headers={"Retry-After": "5"} if state in BUSY_STATES else None)


@blueprint.route(route="batch-jobs/{job}/{instanceId}/failures", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def batch_job_failures(req: func.HttpRequest,
                             client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The failure report (CSV), once the instance has ended."""
    found = await _requested_instance(req, client)
    if isinstance(found, func.HttpResponse):
        return found
    job, instance_id, status = found
    state = runtime_state_of(status)
    if state in BUSY_STATES:
        return problem_response(problem(
            409, "INSTANCE_RUNNING", "Batch job instance still running",
            f"instance {instance_id!r} is {state}; its failures are listed once it ended",
            request_path(req), runtimeStatus=state))
    stored = await asyncio.to_thread(batch_store().read,
                                     InstanceFolder(job.name, instance_id).failures_report)
    if stored is None:
        return problem_response(problem(
            404, "NO_FAILURE_REPORT", "No failure report",
            f"instance {instance_id!r} ended {state} before its report was written, or "
            "its report was purged (BATCH_INSTANCE_RETENTION)",
            request_path(req), runtimeStatus=state))
    return func.HttpResponse(
        stored[0], status_code=200, mimetype="text/csv", charset="utf-8",
        headers={"Content-Disposition":
                 f'attachment; filename="{job.name}-{instance_id}-failures.csv"'})
