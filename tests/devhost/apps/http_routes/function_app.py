"""Sample app: HTTP routes, methods, auth levels and response shapes."""

import json

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="orders/{order_id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_order(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"order_id": int(req.route_params["order_id"]), "view": req.params.get("view")}),
        mimetype="application/json",
    )


@app.route(route="orders/latest", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def latest_order(req: func.HttpRequest) -> str:
    return "latest"


@app.route(route="orders", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def create_order(req: func.HttpRequest) -> func.HttpResponse:
    order = req.get_json()
    return func.HttpResponse(
        json.dumps({"created": order["sku"], "agent": req.headers.get("user-agent-x")}),
        status_code=201,
        headers={"Location": f"/shop/orders/{order['id']}"},
        mimetype="application/json",
    )


@app.route(route="files/{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def read_file_path(req: func.HttpRequest) -> str:
    return req.route_params.get("path", "")


@app.route(route="greet/{name?}", auth_level=func.AuthLevel.ANONYMOUS)
def greet(req: func.HttpRequest) -> str:
    return "hello " + req.route_params.get("name", "stranger")


@app.route(route="private")
def private_report(req: func.HttpRequest) -> str:
    return "function-level secret"


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_report(req: func.HttpRequest) -> str:
    return "admin secret"


@app.route(route="fail", auth_level=func.AuthLevel.ANONYMOUS)
def always_fail(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the order book is on fire")


@app.function_name("echo_with_output_binding")
@app.route(route="echo", auth_level=func.AuthLevel.ANONYMOUS)
@app.generic_output_binding(arg_name="response", type="http")
def echo(req: func.HttpRequest, response: func.Out[func.HttpResponse], context) -> None:
    response.set(
        func.HttpResponse(
            json.dumps({"body": req.get_body().decode(), "function": context.function_name}),
            status_code=202,
            mimetype="application/json",
        )
    )


@app.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="message", queue_name="orders", connection="AzureWebJobsStorage")
def enqueue_order(req: func.HttpRequest, message: func.Out[str]) -> str:
    message.set(req.get_body().decode())
    return "queued"


@app.route(route="wrong-return", auth_level=func.AuthLevel.ANONYMOUS)
def wrong_return(req: func.HttpRequest) -> func.HttpResponse:
    return {"not": "a response"}  # type: ignore[return-value]
