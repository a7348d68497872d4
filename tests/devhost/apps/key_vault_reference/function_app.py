"""Sample app: reads a setting that is a Key Vault reference."""

import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="secret-length")
def secret_length(req: func.HttpRequest) -> str:
    return str(len(os.environ["PAYMENT_API_KEY"]))
