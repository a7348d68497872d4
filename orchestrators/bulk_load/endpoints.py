"""The bulk-load HTTP endpoints that start or stop loads: start (or only validate and plan)
a load, retry an ended load's failed records, cancel a running one.

Each parses and checks what was posted, asks shared/bulkload/ what to do (claims, staging)
and answers problem+json for anything it refuses. Answers name the app's own URLs under the
function key, never the Durable API's (its key is the system key of the whole task hub).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import azure.durable_functions as df
import azure.functions as func
from azure.storage.blob import BlobServiceClient

from orchestrators.bulk_load.lookup import is_bulk_load, load_view_of, requested_load
from orchestrators.bulk_load.orchestration import CANCEL_EVENT, ORCHESTRATOR, blueprint
from orchestrators.http import answers_failures, problem_response, request_path
from shared.answer_json import answer_text
from shared.bulkload.claims import (
    ClaimRefusal,
    claim_load_id,
    release_load_id,
    take_over_abandoned_claim,
)
from shared.bulkload.fingerprint import (
    fingerprint_digest,
)
from shared.bulkload.load_events import log_load_started
from shared.bulkload.messages import LoadInput
from shared.bulkload.plan import plan_load
from shared.bulkload.progress import load_links
from shared.bulkload.request import LOAD_ID_PATTERN, LoadRequest
from shared.bulkload.required_fields import DOCUMENTED_REQUIRED, RequiredFields
from shared.bulkload.retry import failed_record_count, retry_load_id, retry_request
from shared.bulkload.staged import (
    body_digest,
    encode_level,
    encode_request,
)
from shared.bulkload.starter import (
    check_required_fields,
    difference_from_load,
    new_load_id,
    parse_cancel_request,
    parse_load_request,
    stage_new_load,
    stage_posted_load,
)
from shared.bulkload.store import LoadStore
from shared.config import AppSettings, app_settings
from shared.crash_points import crash_point, fault_point
from shared.durable import BUSY_STATES, read_status, runtime_state_of
from shared.log_fields import log_event
from shared.problems import Problem, problem
from shared.salesforce import process_client
from shared.storage.clients import blob_service
from shared.storage.leased_claim import ClaimHold, renew_until_cancelled

REQUIRED_FIELDS = RequiredFields()
SEED_OBJECTS = ("Account", "Contact")

log = logging.getLogger(__name__)

# Crash points of a start (shared/crash_points.py), named after what was just written.
CLAIMED = "bulk_load.start.after_claim"
STAGED = "bulk_load.start.after_staging"
STARTED = "bulk_load.start.after_start_new"
# A fault point: the load is started, marking its claim started (a Blob Storage write) fails.
MARKING_CLAIM = "bulk_load.start.marking_claim"


def _absolute(req: func.HttpRequest, path: str) -> str:
    origin = urlparse(req.url)
    return f"{origin.scheme}://{origin.netloc}{path}"


def _load_links(req: func.HttpRequest, load_id: str) -> dict[str, str]:
    return {name: _absolute(req, path) for name, path in load_links(load_id).items()}


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(answer_text(body), status_code=status,
                             mimetype="application/json", headers=headers)


async def _existing_load(client: df.DurableOrchestrationClient, req: func.HttpRequest,
                         load_id: str, request: LoadRequest,
                         digest: str | None = None) -> func.HttpResponse | None:
    """The answer for a load id that has an instance: its status (200) when the same records
    were posted, 409 when other records were or the instance is not a load. `digest` is the
    posted body's (`body_digest`)."""
    status = await read_status(client, load_id, show_input=True)
    if not status or status.runtime_status is None:
        return None
    instance = request_path(req)
    if not is_bulk_load(status):
        return problem_response(problem(
            409, "LOAD_ID_USED", "Bulk load id already used",
            f"{load_id!r} is the instance id of another orchestration; post the records "
            "with another loadId", instance))
    loaded = LoadInput.from_json(status.input_)
    difference = await asyncio.to_thread(_difference, loaded, request, digest)
    if difference is not None:
        return problem_response(problem(
            409, "LOAD_ID_CONFLICT", "Bulk load id used by other records",
            f"load {load_id!r} exists with other records: {difference}. Post these records "
            "with a new loadId", instance, difference=difference))
    view = load_view_of(status)
    headers = {"Location": _absolute(req, view["statusUrl"])}
    if view["runtimeStatus"] in BUSY_STATES:
        headers["Retry-After"] = "10"
    return _json({"id": load_id, **view, **_load_links(req, load_id)}, 200, headers)


def _difference(loaded: LoadInput, request: LoadRequest, digest: str | None) -> str | None:
    settings = app_settings()
    return difference_from_load(loaded, request, digest, LoadStore.for_load(
        blob_service(settings.storage), settings.bulk_load.container, loaded.prefix))


async def _start_load(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                      request: LoadRequest, load_id: str,
                      origin: LoadInput | None = None) -> func.HttpResponse:
    """Claim the id, stage the records, start the orchestration: 202, or why not."""
    existing = await _existing_load(client, req, load_id, request)
    if existing is not None:
        return existing
    # Each record encoded once: its fingerprint and its staged line are the same text.
    encoded = await asyncio.to_thread(encode_request, request)
    settings = app_settings()
    try:
        return await _claim_and_start(
            req, client, request, load_id, fingerprint_digest(encoded.fingerprint),
            lambda service: stage_new_load(service, settings.bulk_load, load_id, request,
                                           encoded, origin),
            origin)
    finally:
        encoded.close()


async def _start_posted_load(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                             request: LoadRequest, load_id: str,
                             body: bytes) -> func.HttpResponse:
    """`_start_load` for a posted body: the body is kept as posted and only the first
    level's records are encoded before the load starts; a re-post is told apart by the
    body's digest first."""
    digest = body_digest(body)
    existing = await _existing_load(client, req, load_id, request, digest)
    if existing is not None:
        return existing
    first_level = await asyncio.to_thread(encode_level, request.levels[0], request.records[0])
    settings = app_settings()
    try:
        return await _claim_and_start(
            req, client, request, load_id, digest,
            lambda service: stage_posted_load(service, settings.bulk_load, load_id, request,
                                              body, first_level),
            None, digest)
    finally:
        first_level.file.close()


async def _claim_and_start(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                           request: LoadRequest, load_id: str, digest: str,
                           stage: Callable[[BlobServiceClient], LoadInput],
                           origin: LoadInput | None,
                           body_digest: str | None = None) -> func.HttpResponse:
    settings = app_settings()
    service = blob_service(settings.storage)
    container = settings.bulk_load.container
    hold = await asyncio.to_thread(claim_load_id, service, container, load_id, digest)
    if hold is None:
        existing = await _existing_load(client, req, load_id, request, body_digest)
        if existing is not None:
            return existing
        taken = await asyncio.to_thread(take_over_abandoned_claim, service, container,
                                        load_id, request_path(req), digest,
                                        body_digest is None)
        if isinstance(taken, ClaimRefusal):
            return problem_response(taken.problem, headers=taken.headers)
        hold = taken
        logging.warning("bulk load %s: took over a claim abandoned before its load started",
                        load_id)
    crash_point(CLAIMED)
    renewing = asyncio.create_task(renew_until_cancelled(hold))
    try:
        load = await asyncio.to_thread(stage, service)
        crash_point(STAGED)
        await client.start_new(ORCHESTRATOR, load_id, load.to_json())
    except Exception:
        renewing.cancel()
        await asyncio.to_thread(release_load_id, service, container, load_id, hold)
        raise
    renewing.cancel()
    log_load_started(load)
    crash_point(STARTED)
    try:
        await asyncio.to_thread(mark_claim_started, hold)
    except Exception as error:
        # The load is started: the answer is still 202. Its claim step marks the claim
        # once this request's lease lapsed (shared/bulkload/claims.py).
        log_event(log, "bulk load claim not marked", level=logging.WARNING, exc_info=error,
                  load_id=load_id, error_type=type(error).__name__)
    links = _load_links(req, load_id)
    return _json({"id": load_id, "loadId": load_id, "runtimeStatus": "Pending",
                  "retryOf": origin.load_id if origin is not None else None, **links},
                 202, {"Location": links["statusUrl"], "Retry-After": "10"})


def mark_claim_started(hold: ClaimHold) -> None:
    """The storage write a start makes after its load was started."""
    fault_point(MARKING_CLAIM)
    hold.mark_started()


def _required_fields(settings: AppSettings, request: LoadRequest) -> dict[str, frozenset[str]]:
    if request.seed_shape:
        # The seed's shape carries only its own fields: whatever else an org requires, a
        # seed-shaped load could not send it, so the documented fields are what to check.
        return {name: DOCUMENTED_REQUIRED[name] for name in SEED_OBJECTS}
    client = process_client(settings) if settings.salesforce.login_url else None
    return REQUIRED_FIELDS.of(client, {level.object for level in request.levels})


def _validate_only(req: func.HttpRequest) -> bool | Problem:
    value = (req.params.get("validateOnly") or "false").lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    return problem(400, "INVALID_QUERY", "Invalid query parameter",
                   "validateOnly must be true or false", request_path(req))


@blueprint.route(route="bulk-loads", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def bulk_load_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Validate the whole load, stage it, start it: 202 with the load's URLs. With
    `?validateOnly=true`: 200 with the plan (levels, records, job parts), nothing staged."""
    settings = app_settings()
    instance = request_path(req)
    validate_only = _validate_only(req)
    if isinstance(validate_only, Problem):
        return problem_response(validate_only)
    parsed = parse_load_request(req.get_body(), req.headers.get("Content-Length"),
                                settings.bulk_load.max_body_bytes, instance)
    if isinstance(parsed, Problem):
        return problem_response(parsed)
    required = await asyncio.to_thread(_required_fields, settings, parsed)
    refused = check_required_fields(parsed, required, instance)
    if refused is not None:
        return problem_response(refused)
    if validate_only:
        return _json(plan_load(parsed, settings.bulk_load.upload_limit_bytes), 200)
    return await _start_posted_load(req, client, parsed, parsed.load_id or new_load_id(),
                                    req.get_body())


@blueprint.route(route="bulk-loads/{loadId}/retry-failures", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def bulk_load_retry_failures(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """A new load of an ended load's failed, unprocessed and orphaned records, linked to it
    (`retryOf`); children of parents it loaded are linked to those. Body (optional):
    {"loadId": "..."}, by default `<loadId>.retry` (posting twice starts one retry)."""
    origin_id = req.route_params.get("loadId", "")
    instance = request_path(req)
    new_id, bad_body = _parse_retry_body(req.get_body(), retry_load_id(origin_id))
    if bad_body is not None:
        return problem_response(problem(400, "INVALID_BODY", "Invalid retry request",
                                        bad_body, instance))
    status = await requested_load(client, origin_id, instance, show_input=True)
    if isinstance(status, func.HttpResponse):
        return status
    state = runtime_state_of(status)
    if state in BUSY_STATES:
        return problem_response(problem(
            409, "LOAD_RUNNING", "Bulk load still running",
            f"load {origin_id!r} is {state}; its failed records can be retried once it has "
            "ended", instance, runtimeStatus=state))
    origin = LoadInput.from_json(status.input_)
    settings = app_settings()
    store = LoadStore.for_load(blob_service(settings.storage), settings.bulk_load.container,
                               origin.prefix)
    request = await asyncio.to_thread(retry_request, store, origin.levels, new_id)
    if failed_record_count(request) == 0:
        return problem_response(problem(
            409, "NOTHING_TO_RETRY", "No failed records",
            f"load {origin_id!r} has no failed, unprocessed or orphaned records", instance))
    return await _start_load(req, client, request, new_id, origin)


def _parse_retry_body(body: bytes, default_id: str) -> tuple[str, str | None]:
    if not body.strip():
        new_id = default_id
    else:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return "", 'the body must be JSON: {"loadId": "..."} or nothing'
        if not isinstance(parsed, dict) or set(parsed) - {"loadId"}:
            return "", 'the body must be an object with at most "loadId"'
        new_id = parsed.get("loadId", default_id)
    if not isinstance(new_id, str) or not LOAD_ID_PATTERN.fullmatch(new_id):
        return "", ("loadId must be 1-100 letters, digits, '.', '_', ':' or '-' (the default, "
                    "<loadId>.retry, is too long here: give one)")
    return new_id, None


@blueprint.route(route="bulk-loads/{loadId}/cancel", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
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
    status = await requested_load(client, load_id, instance, show_input=False)
    if isinstance(status, func.HttpResponse):
        return status
    state = runtime_state_of(status)
    if state not in BUSY_STATES:
        return problem_response(problem(
            409, "LOAD_ENDED", "Bulk load already ended",
            f"load {load_id!r} is {state}; there is nothing to cancel", instance,
            runtimeStatus=state))
    await client.raise_event(load_id, CANCEL_EVENT, {"reason": reason})
    links = _load_links(req, load_id)
    logging.warning("bulk load %s: cancel requested (%s)", load_id, reason)
    return _json({"loadId": load_id, "cancelRequested": True, "reason": reason,
                  "statusUrl": links["statusUrl"]}, 202, {"Location": links["statusUrl"]})
