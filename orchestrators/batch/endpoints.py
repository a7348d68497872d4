"""`POST /api/batch-jobs/{job}`: Load & dispatch, a batch job instance started (start.py)."""

from __future__ import annotations

import asyncio
import json

import azure.durable_functions as df
import azure.functions as func

from orchestrators.batch.orchestration import blueprint
from orchestrators.batch.start import (
    BatchStartRefused,
    StartedInstance,
    source_stager,
    start_batch_instance,
    start_staged_instance,
)
from orchestrators.http import answers_failures, problem_response, request_path
from shared.batch import batch_jobs
from shared.batch.records import InputRejected, RecordError, media_type, parse_records
from shared.batch.source import (
    InvalidParams,
    bound_params,
    is_source_request,
    params_fingerprint,
    source_request_params,
)
from shared.config import app_settings
from shared.problems import problem


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
