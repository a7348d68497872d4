"""The operations console: a static page over the app's own JSON endpoints.

    GET /api/console                   the page (anonymous: it holds no data, and asks for
                                       a function key that the script sends with every call)
    GET /api/console/assets/{name}     its script, style sheet and icon (anonymous)
    GET /api/console/inventory         what there is to show: the sync jobs and the recent
                                       bulk loads (function key), since the Durable
                                       instances API needs the system key, not a function key
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import azure.functions as func

from orchestrators.bulk_load.orchestration import ORCHESTRATOR as BULK_LOAD_ORCHESTRATOR
from orchestrators.http import problem_response, request_path
from shared.answer_json import answer_text
from shared.config import app_settings
from shared.console.loads import LoadSnapshot, load_view
from shared.console.page import StaticFile, console_asset, console_page, security_headers
from shared.problems import problem
from shared.sync.catalog import sync_jobs

blueprint = df.Blueprint()

RECENT_LOADS_WINDOW = timedelta(days=7)
RECENT_LOADS_SHOWN = 10


def _static_response(file: StaticFile) -> func.HttpResponse:
    return func.HttpResponse(file.body, status_code=200, mimetype=file.content_type,
                             charset="utf-8", headers=security_headers())


@blueprint.route(route="console", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console(req: func.HttpRequest) -> func.HttpResponse:
    return _static_response(console_page())


@blueprint.route(route="console/assets/{name}", methods=["GET"],
                 auth_level=func.AuthLevel.ANONYMOUS)
def console_assets(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name", "")
    file = console_asset(name)
    if file is None:
        return problem_response(problem(404, "UNKNOWN_ASSET", "Unknown console asset",
                                        f"the console has no file {name!r}", request_path(req)))
    return _static_response(file)


@blueprint.route(route="console/inventory", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
async def console_inventory(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """The sync jobs (name, enabled) and the newest bulk loads of the last days."""
    jobs = sync_jobs(app_settings())
    since = datetime.now(UTC) - RECENT_LOADS_WINDOW
    instances = await client.get_status_by(created_time_from=since)
    loads = sorted(
        (status for status in instances if status.name == BULK_LOAD_ORCHESTRATOR),
        key=lambda status: status.created_time or since, reverse=True,
    )[:RECENT_LOADS_SHOWN]
    # The list leaves inputs out; a load's input holds its levels and record counts.
    statuses = await asyncio.gather(*(client.get_status(status.instance_id, show_input=True)
                                      for status in loads))
    body = {
        "syncJobs": [{"job": job.name, "enabled": job.enabled, "statusUrl": f"sync/{job.name}"}
                     for job in jobs.values()],
        "bulkLoads": [load_view(LoadSnapshot(
            load_id=status.instance_id, runtime_status=status.runtime_status.name,
            created_at=status.created_time, updated_at=status.last_updated_time,
            load_input=status.input_, custom_status=status.custom_status,
            output=status.output,
        )) for status in statuses if status and status.runtime_status is not None],
    }
    return func.HttpResponse(answer_text(body), mimetype="application/json",
                             headers={"Cache-Control": "no-store"})
