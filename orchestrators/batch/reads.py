"""The batch job reads: a job's instances, an instance's result, its failure report."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from activities.batch import batch_store, instances_table, orchestration_reader
from orchestrators.batch.orchestration import blueprint
from orchestrators.batch.start import INSTANCE_ID
from orchestrators.http import answers_failures, problem_response, request_path
from shared.answer_json import utc_text
from shared.batch import batch_durable_id, batch_jobs
from shared.batch.instances import PAGE_CURSOR, instances_page
from shared.batch.job import BatchJob
from shared.batch.liveness import ended_outside, settle_listed_rows
from shared.batch.plan import BatchStatus
from shared.batch.store import InstanceFolder
from shared.durable import BUSY_STATES, read_status, runtime_state_of
from shared.problems import problem

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


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
