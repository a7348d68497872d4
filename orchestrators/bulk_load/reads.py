"""The bulk-load HTTP endpoints that read: the recent loads, one load's progress or summary,
its results and its failures as CSV. All under the function key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError

from orchestrators.bulk_load.lookup import is_bulk_load, load_view_of, requested_load
from orchestrators.bulk_load.orchestration import blueprint
from orchestrators.http import answers_failures, problem_response, request_path
from shared.answer_json import answer_text
from shared.bulkload.messages import LoadInput
from shared.bulkload.reports import FAILURES_REPORT, RESULTS_REPORT, write_results_report
from shared.bulkload.store import LoadStore
from shared.bulkload.views import page_token, read_page_token
from shared.config import app_settings
from shared.durable import (
    BUSY_STATES,
    TERMINAL_STATES,
    instance_id_of,
    read_status,
    runtime_state_of,
)
from shared.problems import Problem, problem
from shared.storage.clients import blob_service

DEFAULT_SINCE = timedelta(days=30)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
RUNTIME_STATES = BUSY_STATES | TERMINAL_STATES


def _json(body: object) -> func.HttpResponse:
    return func.HttpResponse(answer_text(body), mimetype="application/json",
                             headers={"Cache-Control": "no-store"})


def _list_query(req: func.HttpRequest) -> tuple[set[str], datetime, int, str | None] | Problem:
    instance = request_path(req)
    states = {state.strip() for state in (req.params.get("status") or "").split(",")
              if state.strip()}
    unknown = {state for state in states if state not in RUNTIME_STATES}
    if unknown:
        return problem(400, "INVALID_QUERY", "Invalid query parameter",
                       f"status {sorted(unknown)} unknown; use any of "
                       f"{', '.join(sorted(RUNTIME_STATES))}, comma-separated", instance)
    try:
        since = (datetime.fromisoformat(req.params["since"]) if req.params.get("since")
                 else datetime.now(UTC) - DEFAULT_SINCE)
    except ValueError:
        return problem(400, "INVALID_QUERY", "Invalid query parameter",
                       "since must be an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z",
                       instance)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    limit_text = req.params.get("limit") or str(DEFAULT_LIMIT)
    # isdigit() alone holds for '²', which int() refuses: ASCII digits only.
    if not (limit_text.isascii() and limit_text.isdigit()) or \
            not 1 <= int(limit_text) <= MAX_LIMIT:
        return problem(400, "INVALID_QUERY", "Invalid query parameter",
                       f"limit must be a whole number from 1 to {MAX_LIMIT}", instance)
    after = req.params.get("after")
    if after is not None and read_page_token(after) is None:
        return problem(400, "INVALID_QUERY", "Invalid query parameter",
                       "after must be the `next` token of an earlier page", instance)
    return states, since, int(limit_text), after


@blueprint.route(route="bulk-loads", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def bulk_load_list(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """The loads created since `since` (default: 30 days), newest first, `limit` a page
    (default 20, at most 100); `status=Running,Failed` keeps those runtime states; `after`
    is the `next` token of the page before."""
    query = _list_query(req)
    if isinstance(query, Problem):
        return problem_response(query)
    states, since, limit, after = query
    instances = await client.get_status_by(created_time_from=since)
    loads = sorted(
        (status for status in instances if is_bulk_load(status) and status.runtime_status
         and (not states or status.runtime_status.name in states)),
        key=lambda status: ((status.created_time or since).isoformat(), status.instance_id),
        reverse=True)
    position = read_page_token(after) if after is not None else None
    if position is not None:  # _list_query refused a token that is not one of ours
        loads = [status for status in loads
                 if ((status.created_time or since).isoformat(), status.instance_id)
                 < position]
    page = loads[:limit]
    # The list leaves inputs out; a load's input holds its levels and record counts.
    statuses = await asyncio.gather(*(read_status(client, instance_id_of(status), show_input=True)
                                      for status in page))
    body = {
        "loads": [load_view_of(status) for status in statuses
                  if status and status.runtime_status is not None],
        "next": (page_token(page[-1].created_time, instance_id_of(page[-1]))
                 if len(loads) > limit else None),
    }
    return _json(body)


@blueprint.route(route="bulk-loads/{loadId}", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def bulk_load_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Where the load is: per level its counts and percent while it runs, then its summary."""
    status = await requested_load(client, req.route_params.get("loadId", ""),
                                  request_path(req), show_input=True)
    if isinstance(status, func.HttpResponse):
        return status
    return _json(load_view_of(status))


async def _report(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                  report: str, what: str, missing_code: str) -> func.HttpResponse:
    load_id = req.route_params.get("loadId", "")
    instance = request_path(req)
    status = await requested_load(client, load_id, instance, show_input=True)
    if isinstance(status, func.HttpResponse):
        return status
    state = runtime_state_of(status)
    if state in BUSY_STATES:
        return problem_response(problem(
            409, "LOAD_RUNNING", "Bulk load still running",
            f"load {load_id!r} is {state}; its {what} are listed once it has ended",
            instance, runtimeStatus=state))
    load = LoadInput.from_json(status.input_)
    settings = app_settings()
    store = LoadStore.for_load(blob_service(settings.storage), settings.bulk_load.container,
                               load.prefix)
    try:
        if report == RESULTS_REPORT:  # written when first asked for
            await asyncio.to_thread(write_results_report, store, load.levels)
        data = await asyncio.to_thread(store.read_bytes, store.name(report))
    except ResourceNotFoundError:  # a terminated load may have no report
        return problem_response(problem(
            404, missing_code, f"No {what} report",
            f"load {load_id!r} ended {state} before its {what} report was written",
            instance, runtimeStatus=state))
    return func.HttpResponse(
        data, status_code=200, mimetype="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{load_id}-{report}"'},
    )


@blueprint.route(route="bulk-loads/{loadId}/failures", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def bulk_load_failures(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Failed, unprocessed and orphaned records of an ended load, as CSV to fix and resend."""
    return await _report(req, client, FAILURES_REPORT, "failures", "NO_FAILURE_REPORT")


@blueprint.route(route="bulk-loads/{loadId}/results", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def bulk_load_results(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """The records an ended load loaded, each with its Salesforce id, as CSV."""
    return await _report(req, client, RESULTS_REPORT, "results", "NO_RESULTS_REPORT")
