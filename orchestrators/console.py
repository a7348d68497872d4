"""The operations console: a static page over the app's own JSON endpoints.

    GET /api/console                   the page (anonymous: it holds no data, and asks for
                                       a function key that the script sends with every call)
    GET /api/console/assets/{name}     its script, style sheet and icon (anonymous)
    GET /api/console/inventory         the configured sync jobs and the registered batch
                                       jobs (function key)

The bulk loads come from the loads API (`GET /api/bulk-loads`, `GET /api/bulk-loads/{id}`,
their results and failures CSV), and each batch job's instances, newest first, from
`GET /api/batch-jobs/{job}`, under the same function key.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from orchestrators.http import answers_failures, problem_response, request_path
from shared.answer_json import answer_text
from shared.batch import batch_jobs
from shared.config import app_settings
from shared.console.page import StaticFile, console_asset, console_page, security_headers
from shared.problems import problem
from shared.sync.catalog import sync_jobs

blueprint = df.Blueprint()


def _static_response(file: StaticFile) -> func.HttpResponse:
    return func.HttpResponse(file.body, status_code=200, mimetype=file.content_type,
                             charset="utf-8", headers=security_headers())


@blueprint.route(route="console", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_failures
def console(req: func.HttpRequest) -> func.HttpResponse:
    return _static_response(console_page())


@blueprint.route(route="console/assets/{name}", methods=["GET"],
                 auth_level=func.AuthLevel.ANONYMOUS)
@answers_failures
def console_assets(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name", "")
    file = console_asset(name)
    if file is None:
        return problem_response(problem(404, "UNKNOWN_ASSET", "Unknown console asset",
                                        f"the console has no file {name!r}", request_path(req)))
    return _static_response(file)


@blueprint.route(route="console/inventory", methods=["GET"])
@answers_failures
def console_inventory(req: func.HttpRequest) -> func.HttpResponse:
    """The sync jobs (name, enabled, where their status is) and the batch jobs (name,
    where their instances are): the lists the page cannot get from an API of their own.
    Bulk loads it reads from `GET /api/bulk-loads`."""
    jobs = sync_jobs(app_settings())
    body = {"syncJobs": [{"job": job.name, "enabled": job.enabled,
                          "statusUrl": f"sync/{job.name}"} for job in jobs.values()],
            "batchJobs": [{"job": name, "statusUrl": f"batch-jobs/{name}"}
                          for name in sorted(batch_jobs())]}
    return func.HttpResponse(answer_text(body), mimetype="application/json",
                             headers={"Cache-Control": "no-store"})
