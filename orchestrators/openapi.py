"""GET /api/openapi.json: the OpenAPI document of the app's HTTP API, kept beside the routes.

Anonymous, like the console page: it describes the endpoints and holds no data.
`tests/orchestrators/test_openapi.py` fails when a route of the app is missing from it.
"""

from __future__ import annotations

from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

from orchestrators.http import answers_failures

OPENAPI_DOCUMENT = Path(__file__).parent / "openapi.json"

blueprint = df.Blueprint()


@blueprint.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_failures
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(OPENAPI_DOCUMENT.read_bytes(), status_code=200,
                             mimetype="application/json", charset="utf-8",
                             headers={"Cache-Control": "no-cache"})
