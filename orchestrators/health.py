"""Health endpoint: proves the app loaded its settings and can reach its storage."""

from __future__ import annotations

import json

import azure.durable_functions as df
import azure.functions as func

from orchestrators.http import answers_failures
from shared.config import app_settings
from shared.storage.clients import table_service

blueprint = df.Blueprint()


@blueprint.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_failures
def report_health(req: func.HttpRequest) -> func.HttpResponse:
    settings = app_settings()
    try:
        next(iter(table_service(settings.storage).list_tables(results_per_page=1)), None)
        storage = "reachable"
        status = 200
    except Exception as error:  # the endpoint's job is to report any failure, not raise it
        storage = f"unreachable: {type(error).__name__}"
        status = 503
    return func.HttpResponse(
        json.dumps({"status": "ok" if status == 200 else "degraded", "storage": storage}),
        status_code=status,
        mimetype="application/json",
    )
