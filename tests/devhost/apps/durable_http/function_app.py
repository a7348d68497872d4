"""Sample app: orchestrators that call HTTP endpoints with `context.call_http`.

The endpoints are the app's own HTTP functions, as in Microsoft's durable HTTP samples;
the test passes the host's base URL as the orchestration input.
"""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="forecast/{city}", methods=["GET"])
def forecast(req: func.HttpRequest) -> func.HttpResponse:
    body = {"city": req.route_params["city"], "celsius": 21}
    return func.HttpResponse(
        json.dumps(body), mimetype="application/json", headers={"X-Station": "north"}
    )


@app.route(route="readings", methods=["POST"])
def store_reading(req: func.HttpRequest) -> func.HttpResponse:
    body = {
        "received": req.get_body().decode(),
        "content_type": req.headers.get("content-type"),
        "trace": req.headers.get("x-trace"),
    }
    return func.HttpResponse(json.dumps(body), status_code=201, mimetype="application/json")


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def weather_report(context: df.DurableOrchestrationContext):
    base = context.get_input()["base"]
    forecast = yield context.call_http("GET", f"{base}/api/forecast/Oslo")
    if forecast["statusCode"] != 200:
        raise RuntimeError(f"forecast answered {forecast['statusCode']}")
    reading = json.loads(forecast["content"])
    stored = yield context.call_http(
        "POST", f"{base}/api/readings", {"celsius": reading["celsius"]},
        headers={"X-Trace": context.instance_id},
    )
    missing = yield context.call_http("GET", f"{base}/api/no-such-route")
    return {
        "city": reading["city"],
        "station": forecast["headers"].get("X-Station"),
        "stored_status": stored["statusCode"],
        "stored": json.loads(stored["content"]),
        "missing_status": missing["statusCode"],
    }


@app.orchestration_trigger(context_name="context")
def call_unreachable(context: df.DurableOrchestrationContext):
    try:
        yield context.call_http("GET", context.get_input()["url"])
    except Exception as error:
        return f"call failed: {error}"
    return "call answered"
