"""Sample app: shows which values its settings have (local.settings.json vs environment)."""

import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="settings")
def show_settings(req: func.HttpRequest) -> func.HttpResponse:
    names = ["GREETING", "REGION"]
    return func.HttpResponse(
        json.dumps({name: os.environ.get(name) for name in names}), mimetype="application/json"
    )
