"""Parent-child Bulk API 2.0 loads (seed 002) as one durable orchestration per load.

    POST /api/bulk-loads -> validate everything (400/413 problem+json), stage records in
        Blob Storage, start `bulk_load` with instance id = loadId (202 + status URLs);
        a loadId posted again answers that load's status (200) instead of loading twice,
        or 409 once that load's history was purged (a load id loads once, ever).
    bulk_load, for each level top-down:
        1. stage the level's CSV (children of parents not loaded become orphans)
        2. create, upload and close one job per CSV part
        3. poll the jobs with durable timers until they end; abort them after max wait
        4. read results: ID map, failed and unprocessed records
       a level whose job Failed, was Aborted or stalled stops the load: later levels are
       reported as skipped, every record with the reason.
    POST /api/bulk-loads/{loadId}/cancel -> the event `cancel`: at its next poll the load
        aborts its running jobs, skips the remaining levels and reports (outcome cancelled).
    GET /api/bulk-loads/{loadId}/failures -> failed and orphaned records as CSV.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError

from orchestrators.http import problem_response, request_path
from shared.bulkload import progress
from shared.bulkload.levels import FAILURES_REPORT, stage_request
from shared.bulkload.request import LOAD_ID_PATTERN
from shared.bulkload.starter import (
    Problem,
    existing_load_body,
    new_load_id,
    new_run_prefix,
    parse_load_request,
    problem,
    refused_claim,
)
from shared.bulkload.store import (
    LoadStore,
    claim_load_id,
    mark_load_started,
    read_load_claim,
    release_load_id,
    take_over_load_claim,
)
from shared.config import app_settings
from shared.durable import BUSY_STATES, input_object
from shared.storage.clients import blob_service

blueprint = df.Blueprint()

ORCHESTRATOR = "bulk_load"
CANCEL_EVENT = "cancel"
MAX_CANCEL_REASON = 500


# -- the orchestration ---------------------------------------------------------------------


class LoadRestartRefused(Exception):
    """A restart through the Durable API would send the load's records a second time."""


@blueprint.orchestration_trigger(context_name="context")
def bulk_load(context: df.DurableOrchestrationContext):
    load = input_object(context.get_input(), "the bulk load's input")
    retry = df.RetryOptions(
        first_retry_interval_in_milliseconds=max(1, int(load["activityRetryDelay"] * 1000)),
        max_number_of_attempts=load["activityAttempts"],
    )
    started = context.current_utc_datetime
    # One task for the whole load: a cancel raised at any time completes it, and every poll
    # below races its timer against it.
    # 0. this execution, and no restart of it, loads the staged records
    if context.instance_id != load["loadId"]:
        raise LoadRestartRefused(
            f"instance {context.instance_id!r} runs load {load['loadId']!r}: a load cannot "
            "be restarted under a new id; post it again with a new loadId")
    yield context.call_activity_with_retry(
        "bulk_load_claim_run", retry,
        {"prefix": load["prefix"], "runToken": str(context.new_uuid())})
    cancel_requested = context.wait_for_external_event(CANCEL_EVENT)
    cancel_reason: str | None = None
    summaries = [progress.new_level_summary(level, count)
                 for level, count in zip(load["levels"], load["records"], strict=True)]
    stop_reason: str | None = None

    for index, level in enumerate(load["levels"]):
        ref = {"prefix": load["prefix"], "levels": load["levels"], "level": index}
        if stop_reason is None and cancel_requested.is_completed:
            cancel_reason = progress.cancel_reason(cancel_requested.result)
            stop_reason = f"CANCELLED:load cancelled before this level: {cancel_reason}"
        if stop_reason is not None:
            context.set_custom_status(progress.custom_status(load, index, "skipping", [],
                                                             summaries))
            try:
                staged = yield context.call_activity_with_retry(
                    "bulk_load_stage_level", retry, {**ref, "skipReason": stop_reason})
            except Exception:  # the level is skipped either way; the report says so
                staged = None
            summaries[index] = progress.skipped_level(
                summaries[index], staged, stop_reason, context.current_utc_datetime)
            continue

        level_started = context.current_utc_datetime
        staged: dict[str, Any] | None = None
        jobs: list[dict[str, Any]] = []
        results: dict[str, Any] | None = None
        error: str | None = None
        try:
            # 1. stage the level's CSV, dropping children of parents that were not loaded
            context.set_custom_status(progress.custom_status(load, index, "staging", jobs,
                                                             summaries))
            staged = yield context.call_activity_with_retry(
                "bulk_load_stage_level", retry, {**ref, "uploadLimit": load["uploadLimit"]})

            # 2. one job per part: create, upload, close
            for part in staged["parts"]:
                job = yield context.call_activity_with_retry(
                    "bulk_load_create_job", retry, {"level": level})
                jobs.append(job)
                context.set_custom_status(progress.custom_status(load, index, "uploading",
                                                                 jobs, summaries))
                jobs[-1] = yield context.call_activity_with_retry(
                    "bulk_load_upload_part", retry,
                    {"prefix": load["prefix"], "jobId": job["id"], "blob": part["blob"]})

            # 3. poll with durable timers until every job ended, or abort at max wait
            deadline = context.current_utc_datetime + timedelta(seconds=load["maxWait"])
            stalled: list[str] = []
            while jobs:
                now = context.current_utc_datetime
                decision = progress.poll_decision(jobs, now, deadline)
                if decision == "done":
                    break
                if decision == "stalled":
                    stalled = progress.running_job_ids(jobs)
                    context.set_custom_status(progress.custom_status(load, index, "aborting",
                                                                     jobs, summaries))
                    aborted = yield context.call_activity_with_retry(
                        "bulk_load_abort_jobs", retry, {"jobIds": stalled})
                    by_id = {job["id"]: job for job in aborted}
                    jobs = [by_id.get(job["id"], job) for job in jobs]
                    break
                context.set_custom_status(progress.custom_status(load, index, "waiting",
                                                                 jobs, summaries))
                next_poll = context.create_timer(
                    progress.next_poll_at(now, load["pollInterval"], deadline))
                woken_by = yield context.task_any([next_poll, cancel_requested])
                if woken_by is cancel_requested:
                    next_poll.cancel()
                    cancel_reason = progress.cancel_reason(cancel_requested.result)
                    context.set_custom_status(progress.custom_status(load, index, "cancelling",
                                                                     jobs, summaries))
                    aborted = yield context.call_activity_with_retry(
                        "bulk_load_abort_jobs", retry, {"jobIds": progress.running_job_ids(jobs)})
                    by_id = {job["id"]: job for job in aborted}
                    jobs = [by_id.get(job["id"], job) for job in jobs]
                    break
                jobs = yield context.call_activity_with_retry(
                    "bulk_load_poll_jobs", retry, {"jobIds": [job["id"] for job in jobs]})
            error = progress.level_failure(jobs, stalled, load["maxWait"])
            if cancel_reason is not None:
                error = f"cancelled: {cancel_reason}"

            # 4. results: ID map for the next level, failed and unprocessed records
            context.set_custom_status(progress.custom_status(load, index, "reading results",
                                                             jobs, summaries))
            results = yield context.call_activity_with_retry(
                "bulk_load_collect_results", retry,
                {**ref, "jobs": jobs, "columns": staged["columns"]})
        except Exception as failure:  # an activity out of retries: the level failed
            error = error or f"{failure}"
        summaries[index] = progress.finish_level(
            summaries[index], staged=staged, jobs=jobs, results=results,
            started=level_started, ended=context.current_utc_datetime, error=error)
        if cancel_reason is not None:
            summaries[index]["state"] = "cancelled"
            stop_reason = f"CANCELLED:load cancelled: {cancel_reason}"
        elif error is not None:
            stop_reason = f"LEVEL_FAILED:level {level['name']} failed: {error}"

    try:
        failures = yield context.call_activity_with_retry(
            "bulk_load_write_failures", retry,
            {"prefix": load["prefix"], "levelCount": len(load["levels"])})
    except Exception:  # the summary still tells what happened
        failures = None
    summary = progress.load_summary(load, summaries, started, context.current_utc_datetime,
                                    failures, cancel_reason=cancel_reason)
    context.set_custom_status({"loadId": load["loadId"], "phase": "completed",
                               "outcome": summary["outcome"]})
    return summary


# -- HTTP ---------------------------------------------------------------------------------------


def _is_bulk_load(status: df.DurableOrchestrationStatus) -> bool:
    # Load ids share the task hub with other instances (the sync jobs' `sync-<job>`): an
    # instance of another orchestration is not a load, whatever its id.
    return status.name == ORCHESTRATOR


async def _existing_load(client: df.DurableOrchestrationClient, req: func.HttpRequest,
                         load_id: str) -> func.HttpResponse | None:
    status = await client.get_status(load_id)
    if not status or status.runtime_status is None:
        return None
    if not _is_bulk_load(status):
        return problem_response(problem(
            409, "LOAD_ID_USED", "Bulk load id already used",
            f"{load_id!r} is the instance id of another orchestration; post the records "
            "with another loadId", request_path(req)))
    links = client.get_client_response_links(req, load_id)
    body = existing_load_body(status, links)
    headers = {"Location": links["statusQueryGetUri"]}
    if body["runtimeStatus"] in BUSY_STATES:
        headers["Retry-After"] = "10"
    return func.HttpResponse(json.dumps(body, default=str), status_code=200,
                             mimetype="application/json", headers=headers)


@blueprint.route(route="bulk-loads", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
async def bulk_load_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Validate the whole load, stage it, start it; 202 with the Durable status URLs."""
    settings = app_settings()
    parsed = parse_load_request(req.get_body(), req.headers.get("Content-Length"),
                                settings.bulk_load.max_body_bytes, request_path(req))
    if isinstance(parsed, Problem):
        return problem_response(parsed)
    load_id = parsed.load_id or new_load_id()
    existing = await _existing_load(client, req, load_id)
    if existing is not None:
        return existing
    service = blob_service(settings.storage)
    container = settings.bulk_load.container
    if not await asyncio.to_thread(claim_load_id, service, container, load_id):
        existing = await _existing_load(client, req, load_id)
        if existing is not None:
            return existing
        # Claimed, yet no orchestration: being started, purged, or its request died.
        claim = await asyncio.to_thread(read_load_claim, service, container, load_id)
        refused = refused_claim(claim, datetime.now(UTC), load_id, request_path(req))
        if refused is None and claim is not None and not await asyncio.to_thread(
                take_over_load_claim, service, container, load_id, claim):
            refused = refused_claim(None, datetime.now(UTC), load_id, request_path(req))
        if refused is not None:
            headers = {"Retry-After": "5"} if refused.body["code"] == "LOAD_STARTING" else None
            return problem_response(refused, headers=headers)
        logging.warning("bulk load %s: took over a claim abandoned before its load started",
                        load_id)
    store = LoadStore.for_load(service, container, new_run_prefix(load_id))
    try:
        counts = await asyncio.to_thread(stage_request, store, parsed)
        load_input = progress.load_input(
            load_id, store.prefix, [level.to_json() for level in parsed.levels], counts,
            poll_interval=settings.bulk_load.poll_interval,
            max_wait=settings.bulk_load.max_wait,
            upload_limit=settings.bulk_load.upload_limit_bytes,
            activity_attempts=settings.bulk_load.activity_attempts,
            activity_retry_delay=settings.bulk_load.activity_retry_delay,
        )
        await client.start_new(ORCHESTRATOR, load_id, load_input)
    except Exception:
        await asyncio.to_thread(release_load_id, service, container, load_id)
        raise
    try:
        await asyncio.to_thread(mark_load_started, service, container, load_id)
    except Exception:  # the load runs; only a purge of it could then free its id again
        logging.exception("bulk load %s: started, but its claim could not be marked", load_id)
    return client.create_check_status_response(req, load_id)


async def _requested_load(
    client: df.DurableOrchestrationClient, load_id: str, instance: str, show_input: bool
) -> df.DurableOrchestrationStatus | func.HttpResponse:
    """The status of bulk load `load_id`, or the 404 problem answer when there is none."""
    status = (await client.get_status(load_id, show_input=show_input)
              if LOAD_ID_PATTERN.fullmatch(load_id) else None)
    if not status or status.runtime_status is None or not _is_bulk_load(status):
        return problem_response(problem(404, "UNKNOWN_LOAD", "Unknown bulk load",
                                         f"no bulk load {load_id!r}", instance))
    return status


@blueprint.route(route="bulk-loads/{loadId}/cancel", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
async def bulk_load_cancel(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Ask a running load to stop: it aborts its running jobs at its next poll and reports.

    Unlike terminating the instance, the Salesforce jobs are aborted and the summary and the
    failures CSV are written. Body (optional): {"reason": "..."}.
    """
    load_id = req.route_params.get("loadId", "")
    instance = request_path(req)
    reason, bad_body = _cancel_reason(req.get_body())
    if bad_body is not None:
        return problem_response(problem(400, "INVALID_BODY", "Invalid cancel request",
                                         bad_body, instance))
    status = await _requested_load(client, load_id, instance, show_input=False)
    if isinstance(status, func.HttpResponse):
        return status
    state = status.runtime_status.name
    if state not in BUSY_STATES:
        return problem_response(problem(
            409, "LOAD_ENDED", "Bulk load already ended",
            f"load {load_id!r} is {state}; there is nothing to cancel", instance,
            runtimeStatus=state))
    await client.raise_event(load_id, CANCEL_EVENT, {"reason": reason})
    links = client.get_client_response_links(req, load_id)
    logging.warning("bulk load %s: cancel requested (%s)", load_id, reason)
    return func.HttpResponse(
        json.dumps({"loadId": load_id, "cancelRequested": True, "reason": reason,
                    "statusQueryGetUri": links["statusQueryGetUri"]}),
        status_code=202, mimetype="application/json",
        headers={"Location": links["statusQueryGetUri"]},
    )


def _cancel_reason(body: bytes) -> tuple[str | None, str | None]:
    """(reason, None) from an empty body or {"reason": "..."}; (None, problem) otherwise."""
    if not body.strip():
        return None, None
    try:
        parsed = json.loads(body)
    except ValueError as error:
        return None, f"the body is not JSON ({error}); send {{\"reason\": \"...\"}} or nothing"
    except RecursionError:
        return None, 'the body nests JSON too deeply; send {"reason": "..."} or nothing'
    if not isinstance(parsed, dict) or not isinstance(parsed.get("reason", ""), str):
        return None, 'the body must be an object whose "reason" is text'
    if len(parsed.get("reason", "")) > MAX_CANCEL_REASON:
        # The reason goes into history and the summary: keep both small.
        return None, f'"reason" is longer than {MAX_CANCEL_REASON} characters'
    return parsed.get("reason") or None, None


@blueprint.route(route="bulk-loads/{loadId}/failures", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
async def bulk_load_failures(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Failed, unprocessed and orphaned records of a finished load, as CSV to fix and resend."""
    load_id = req.route_params.get("loadId", "")
    instance = request_path(req)
    status = await _requested_load(client, load_id, instance, show_input=True)
    if isinstance(status, func.HttpResponse):
        return status
    state = status.runtime_status.name
    if state in BUSY_STATES:
        return problem_response(problem(
            409, "LOAD_RUNNING", "Bulk load still running",
            f"load {load_id!r} is {state}; its failures are listed once it has ended",
            instance, runtimeStatus=state))
    load = input_object(status.input_, f"the input of load {load_id!r}")
    settings = app_settings()
    store = LoadStore.for_load(blob_service(settings.storage), settings.bulk_load.container,
                               load["prefix"])
    blob = store.name(FAILURES_REPORT)
    try:
        data = await asyncio.to_thread(store.read_bytes, blob)
    except ResourceNotFoundError:  # a terminated load may have no report
        return problem_response(problem(
            404, "NO_FAILURE_REPORT", "No failure report",
            f"load {load_id!r} ended {state} before its failure report was written",
            instance, runtimeStatus=state))
    return func.HttpResponse(
        data, status_code=200, mimetype="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{load_id}-failures.csv"'},
    )
