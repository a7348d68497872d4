"""The bulk-load HTTP endpoints: start a load, cancel it, fetch its failures as CSV.

Each parses and checks what was posted, asks shared/bulkload/ what to do (claims, staging)
and answers problem+json for anything it refuses.
"""

from __future__ import annotations

import asyncio
import json
import logging

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError

from orchestrators.bulk_load.orchestration import CANCEL_EVENT, ORCHESTRATOR, blueprint
from orchestrators.http import problem_response, request_path
from shared.bulkload.claims import (
    claim_load_id,
    mark_load_started,
    release_load_id,
    take_over_abandoned_claim,
)
from shared.bulkload.levels import FAILURES_REPORT
from shared.bulkload.messages import LoadInput
from shared.bulkload.request import LOAD_ID_PATTERN
from shared.bulkload.starter import (
    Problem,
    existing_load_body,
    new_load_id,
    parse_cancel_request,
    parse_load_request,
    problem,
    stage_new_load,
)
from shared.bulkload.store import LoadStore
from shared.config import app_settings
from shared.durable import BUSY_STATES
from shared.storage.clients import blob_service


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
        refusal = await asyncio.to_thread(take_over_abandoned_claim, service, container,
                                          load_id, request_path(req))
        if refusal is not None:
            return problem_response(refusal.problem, headers=refusal.headers)
        logging.warning("bulk load %s: took over a claim abandoned before its load started",
                        load_id)
    try:
        load = await asyncio.to_thread(stage_new_load, service, settings.bulk_load, load_id,
                                       parsed)
        await client.start_new(ORCHESTRATOR, load_id, load.to_json())
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
    reason, bad_body = parse_cancel_request(req.get_body())
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
    load = LoadInput.from_json(status.input_)
    settings = app_settings()
    store = LoadStore.for_load(blob_service(settings.storage), settings.bulk_load.container,
                               load.prefix)
    try:
        data = await asyncio.to_thread(store.read_bytes, store.name(FAILURES_REPORT))
    except ResourceNotFoundError:  # a terminated load may have no report
        return problem_response(problem(
            404, "NO_FAILURE_REPORT", "No failure report",
            f"load {load_id!r} ended {state} before its failure report was written",
            instance, runtimeStatus=state))
    return func.HttpResponse(
        data, status_code=200, mimetype="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{load_id}-failures.csv"'},
    )
